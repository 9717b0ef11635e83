use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Graph property that may be absent, explicitly `null`, or set.
///
/// `Option` cannot tell absent from `null`, and a PATCH that turns one into
/// the other changes what Graph stores, so models use this instead.
/// Pair it with `#[serde(default, skip_serializing_if = "Maybe::is_absent")]`.
///
/// A value of a shape the model cannot hold (an array where an object belongs,
/// as in some published policies) is kept verbatim as `Raw`, so models still
/// round-trip it losslessly; [`misshapen`] tells a reader that this happened.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Maybe<T> {
    #[default]
    Absent,
    Null,
    Value(T),
    /// Not of the documented shape: kept as sent, never interpreted.
    Raw(serde_json::Value),
}

thread_local! {
    static MISSHAPEN: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `read` and returns what it made, with the first value it had to keep as
/// `Raw` (why it did not fit), if any. Deserialization runs on this thread.
pub fn misshapen<R>(read: impl FnOnce() -> R) -> (R, Option<String>) {
    MISSHAPEN.with(|m| m.borrow_mut().take());
    let r = read();
    (r, MISSHAPEN.with(|m| m.borrow_mut().take()))
}

impl<T> Maybe<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Maybe::Absent)
    }

    pub fn as_ref(&self) -> Option<&T> {
        match self {
            Maybe::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_mut(&mut self) -> Option<&mut T> {
        match self {
            Maybe::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn into_option(self) -> Option<T> {
        match self {
            Maybe::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The value, inserting `T::default()` first when absent or null.
    pub fn get_or_insert_default(&mut self) -> &mut T
    where
        T: Default,
    {
        if !matches!(self, Maybe::Value(_)) {
            *self = Maybe::Value(T::default());
        }
        match self {
            Maybe::Value(v) => v,
            _ => unreachable!("just set"),
        }
    }
}

impl<T> From<T> for Maybe<T> {
    fn from(v: T) -> Self {
        Maybe::Value(v)
    }
}

impl<T> From<Option<T>> for Maybe<T> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Maybe::Null, Maybe::Value)
    }
}

impl<T: Serialize> Serialize for Maybe<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Maybe::Value(v) => v.serialize(s),
            Maybe::Raw(v) => v.serialize(s),
            _ => s.serialize_none(),
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Maybe<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if v.is_null() {
            return Ok(Maybe::Null);
        }
        match T::deserialize(&v) {
            Ok(t) => Ok(Maybe::Value(t)),
            Err(e) => {
                MISSHAPEN.with(|m| m.borrow_mut().get_or_insert_with(|| e.to_string()).len());
                Ok(Maybe::Raw(v))
            }
        }
    }
}
