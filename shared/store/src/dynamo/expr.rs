//! Update and condition expressions with a placeholder for every name and value.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue as Av;

use super::attr::n;

/// An update expression under construction, with placeholders for every name.
#[derive(Default)]
pub(super) struct Expr {
    pub(super) set: Vec<String>,
    pub(super) remove: Vec<String>,
    pub(super) add: Vec<String>,
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, Av>,
}

impl Expr {
    pub(super) fn name(&mut self, attr: &str) -> String {
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attr.to_owned());
        placeholder
    }
    pub(super) fn value(&mut self, v: Av) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), v);
        placeholder
    }
    pub(super) fn set(&mut self, attr: &str, v: Av) {
        let (n, v) = (self.name(attr), self.value(v));
        self.set.push(format!("{n} = {v}"));
    }
    /// SET when `Some`, REMOVE when `None`.
    pub(super) fn set_or_remove(&mut self, attr: &str, v: Option<Av>) {
        match v {
            Some(v) => self.set(attr, v),
            None => {
                let n = self.name(attr);
                self.remove.push(n);
            }
        }
    }
    pub(super) fn add(&mut self, attr: &str, by: u64) {
        let (n, v) = (self.name(attr), self.value(n_av(by)));
        self.add.push(format!("{n} {v}"));
    }
    pub(super) fn update_expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        if !self.add.is_empty() {
            parts.push(format!("ADD {}", self.add.join(", ")));
        }
        parts.join(" ")
    }
    pub(super) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }
    pub(super) fn values(&self) -> Option<HashMap<String, Av>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

pub(super) fn n_av(v: u64) -> Av {
    n(v)
}

/// The condition that an item is still at the revision it was read at (an item
/// without the attribute reads as revision 0), with its placeholders.
pub(super) fn revision_condition(expr: &mut Expr, revision: u64) -> String {
    let rev = expr.name("revision");
    let v = expr.value(n(revision));
    if revision == 0 {
        format!("(attribute_not_exists({rev}) OR {rev} = {v})")
    } else {
        format!("{rev} = {v}")
    }
}
