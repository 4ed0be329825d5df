//! Compressed bodies: inline up to 100 KB, else parts written before the item
//! that references them (see "Bodies" in [`super`]).

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue as Av, DeleteRequest, PutRequest, WriteRequest};
use planning::{MigrationSummary, TransformationMap};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DynamoStore;
use super::attr::{Item, bad_item, get_n, get_s, n, s};
use super::expr::Expr;
use super::keys::{blob_pk, key};
use super::ops::built;
use crate::codec::{compress_json, decompress_json};
use crate::{StoreError, StoreResult};

pub(super) const INLINE_MAX: usize = 100 * 1024;
pub(super) const PART_MAX: usize = 350 * 1024;

// ---------------------------------------------------------------------------

/// Where a compressed body lives.
pub(super) enum BodyRef {
    Inline(Vec<u8>),
    Blob { id: String, parts: usize },
}

impl BodyRef {
    pub(super) fn write_into(&self, item: &mut Item, name: &str) {
        match self {
            BodyRef::Inline(bytes) => {
                item.insert(format!("{name}_inline"), Av::B(Blob::new(bytes.clone())));
            }
            BodyRef::Blob { id, parts } => {
                item.insert(format!("{name}_blob"), s(id.clone()));
                item.insert(format!("{name}_parts"), n(parts));
            }
        }
    }

    /// Swap the reference in an update expression.
    pub(super) fn write_expr(&self, expr: &mut Expr, name: &str) {
        match self {
            BodyRef::Inline(bytes) => {
                expr.set(&format!("{name}_inline"), Av::B(Blob::new(bytes.clone())));
                expr.set_or_remove(&format!("{name}_blob"), None);
                expr.set_or_remove(&format!("{name}_parts"), None);
            }
            BodyRef::Blob { id, parts } => {
                expr.set_or_remove(&format!("{name}_inline"), None);
                expr.set(&format!("{name}_blob"), s(id.clone()));
                expr.set(&format!("{name}_parts"), n(parts));
            }
        }
    }

    pub(super) fn read(item: &Item, name: &str) -> StoreResult<BodyRef> {
        if let Some(Av::B(bytes)) = item.get(&format!("{name}_inline")) {
            return Ok(BodyRef::Inline(bytes.as_ref().to_vec()));
        }
        let id = get_s(item, &format!("{name}_blob"))?.to_owned();
        let parts = get_n(item, &format!("{name}_parts"))?;
        Ok(BodyRef::Blob { id, parts })
    }
}

/// The immutable part of a plan body.
#[derive(Serialize, Deserialize)]
pub(super) struct PlanBody {
    pub(super) transformation_map: TransformationMap,
    pub(super) summary: MigrationSummary,
}

impl DynamoStore {
    /// Compress `value` and store it inline or as parts; parts are written now.
    pub(super) async fn store_body<T: Serialize + ?Sized>(
        &self,
        tenant: Uuid,
        value: &T,
    ) -> StoreResult<BodyRef> {
        let bytes = compress_json(value)?;
        if bytes.len() <= INLINE_MAX {
            return Ok(BodyRef::Inline(bytes));
        }
        let id = Uuid::new_v4().simple().to_string();
        let pk = blob_pk(tenant, &id);
        let mut requests = Vec::new();
        for (i, chunk) in bytes.chunks(PART_MAX).enumerate() {
            let mut item = key(pk.clone(), &format!("P#{i:05}"));
            item.insert("data".into(), Av::B(Blob::new(chunk.to_vec())));
            let put = built(PutRequest::builder().set_item(Some(item)).build())?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        let parts = requests.len();
        self.batch_write(requests).await?;
        Ok(BodyRef::Blob { id, parts })
    }

    pub(super) async fn load_body<T: serde::de::DeserializeOwned>(
        &self,
        tenant: Uuid,
        body: &BodyRef,
    ) -> StoreResult<T> {
        match body {
            BodyRef::Inline(bytes) => decompress_json(bytes),
            BodyRef::Blob { id, parts } => {
                let items = self
                    .query_all(
                        self.client
                            .query()
                            .table_name(self.main())
                            .key_condition_expression("pk = :pk")
                            .expression_attribute_values(":pk", s(blob_pk(tenant, id)))
                            .consistent_read(true),
                    )
                    .await?;
                if items.len() != *parts {
                    return Err(StoreError::Unexpected(format!(
                        "body {id}: {} of {parts} parts",
                        items.len()
                    )));
                }
                let mut bytes = Vec::new();
                for item in &items {
                    match item.get("data") {
                        Some(Av::B(b)) => bytes.extend_from_slice(b.as_ref()),
                        _ => return Err(bad_item("data")),
                    }
                }
                decompress_json(&bytes)
            }
        }
    }

    /// Best effort: an orphaned body costs storage, never correctness.
    pub(super) async fn delete_body(&self, tenant: Uuid, body: &BodyRef) {
        let BodyRef::Blob { id, parts } = body else {
            return;
        };
        let mut requests = Vec::new();
        for i in 0..*parts {
            let Ok(del) = DeleteRequest::builder()
                .set_key(Some(key(blob_pk(tenant, id), &format!("P#{i:05}"))))
                .build()
            else {
                return;
            };
            requests.push(WriteRequest::builder().delete_request(del).build());
        }
        if let Err(e) = self.batch_write(requests).await {
            tracing::warn!(error = %e, blob = %id, "could not delete an unused body");
        }
    }
}
