//! JSON helpers shared by the planners: comparison as Graph means it (absent is
//! null, string arrays are sets), PATCH semantics, and the diff of an owned object.

use serde::Serialize;
use serde_json::{Map, Value};

/// Compares two values, reading absent as `null` and string arrays as sets.
pub fn same(current: Option<&Value>, desired: &Value) -> bool {
    let current = current.unwrap_or(&Value::Null);
    match (current, desired) {
        (Value::Array(a), Value::Array(b)) => set_of(a) == set_of(b),
        (Value::Null, Value::Array(b)) | (Value::Array(b), Value::Null) => b.is_empty(),
        _ => current == desired,
    }
}

fn set_of(a: &[Value]) -> Vec<String> {
    let mut v: Vec<String> =
        a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_ascii_lowercase)).collect();
    v.sort();
    v.dedup();
    v
}

/// Sets `value` at a JSON pointer, creating objects on the way.
pub(crate) fn put(target: &mut Value, pointer: &str, value: Value) {
    let mut cur = target;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let obj = cur.as_object_mut().expect("object");
        if i + 1 == parts.len() {
            obj.insert((*part).to_string(), value);
            return;
        }
        cur = obj.entry((*part).to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Graph's PATCH semantics: objects merge property by property, anything else is replaced.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge_patch(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Accumulates the fields of an owned object that differ from what is wanted.
pub(crate) struct Diff<'a> {
    current: &'a Value,
    pub body: Value,
    pub before: Value,
    pub changed: Vec<String>,
}

impl<'a> Diff<'a> {
    pub fn new(current: &'a Value) -> Self {
        Diff { current, body: Value::Object(Map::new()), before: Value::Object(Map::new()), changed: vec![] }
    }

    /// Wants `desired` at `pointer`; records a change if it differs.
    pub fn want(&mut self, pointer: &str, desired: Value) {
        let now = self.current.pointer(pointer);
        if !same(now, &desired) {
            put(&mut self.body, pointer, desired);
            put(&mut self.before, pointer, now.cloned().unwrap_or(Value::Null));
            self.changed.push(pointer.rsplit('/').next().unwrap_or(pointer).to_string());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
    }
}

/// The string list at a pointer (absent or null is empty).
pub(crate) fn strings(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// `a` plus whatever of `add` it lacks (case-insensitively), order kept.
pub(crate) fn union(a: &[String], add: &[String]) -> Vec<String> {
    let mut out = a.to_vec();
    for x in add {
        if !out.iter().any(|y| y.eq_ignore_ascii_case(x)) {
            out.push(x.clone());
        }
    }
    out
}

/// A model as JSON (models always serialize).
pub fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("models serialize")
}
