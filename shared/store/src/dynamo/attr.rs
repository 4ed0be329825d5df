//! Attribute values: building them and reading them out of items, with a
//! malformed item reported as [`bad_item`].
//!
//! Every other module of the DynamoDB store reads and writes attributes
//! through these, so this module depends on nothing of the crate but the
//! error type: whatever else changes, it stays at the bottom of the module
//! graph.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{StoreError, StoreResult};

/// An item: attribute name → value.
pub(super) type Item = HashMap<String, Av>;

pub(super) fn bad_item(what: &str) -> StoreError {
    StoreError::Unexpected(format!("malformed item: {what}"))
}

pub(super) fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}

pub(super) fn n(v: impl ToString) -> Av {
    Av::N(v.to_string())
}

pub(super) fn get_s<'a>(item: &'a Item, name: &str) -> StoreResult<&'a str> {
    opt_s(item, name)?.ok_or_else(|| bad_item(name))
}

pub(super) fn opt_s<'a>(item: &'a Item, name: &str) -> StoreResult<Option<&'a str>> {
    match item.get(name) {
        None | Some(Av::Null(_)) => Ok(None),
        Some(Av::S(v)) => Ok(Some(v.as_str())),
        Some(_) => Err(bad_item(name)),
    }
}

/// Whether the item's string attribute `name` is `value`.
pub(super) fn has_s(item: &Item, name: &str, value: &str) -> bool {
    matches!(opt_s(item, name), Ok(Some(v)) if v == value)
}

pub(super) fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> StoreResult<T> {
    opt_n(item, name)?.ok_or_else(|| bad_item(name))
}

pub(super) fn opt_n<T: std::str::FromStr>(item: &Item, name: &str) -> StoreResult<Option<T>> {
    match item.get(name) {
        None | Some(Av::Null(_)) => Ok(None),
        Some(Av::N(v)) => v.parse().map(Some).map_err(|_| bad_item(name)),
        Some(_) => Err(bad_item(name)),
    }
}

pub(super) fn get_uuid(item: &Item, name: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(get_s(item, name)?).map_err(|_| bad_item(name))
}

pub(super) fn parse_time(v: &str, name: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| bad_item(name))
}

pub(super) fn get_time(item: &Item, name: &str) -> StoreResult<DateTime<Utc>> {
    parse_time(get_s(item, name)?, name)
}
