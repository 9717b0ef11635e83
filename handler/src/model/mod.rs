//! Typed Microsoft Graph models.
//!
//! caguard PATCHes objects it only partly models, so every model is lossless:
//! - each named field is a [`Maybe`], which tells "absent" from explicit `null`;
//! - every object keeps the properties it does not name in a flattened `extra` map;
//! - every enum keeps values it does not know in an `Unknown(String)` variant.
//!
//! A read → write round trip therefore reproduces the JSON Graph sent, field for field.

mod audit;
mod batch;
mod gdap;
mod location;
mod maybe;
mod misc;
mod notification;
mod policy;

pub use audit::*;
pub use batch::*;
pub use gdap::*;
pub use location::*;
pub use maybe::{Maybe, misshapen};
pub use misc::*;
pub use notification::*;
pub use policy::*;

/// Properties a model does not name, kept verbatim.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// Declares a Graph object whose named fields are all [`Maybe`] and whose
/// other properties land in `extra`.
macro_rules! graph_object {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $(
                $(#[$fmeta])*
                #[serde(default, skip_serializing_if = "crate::model::Maybe::is_absent")]
                pub $field: crate::model::Maybe<$ty>,
            )*
            /// Properties this model does not name, kept verbatim.
            #[serde(flatten)]
            pub extra: crate::model::Extra,
        }
    };
}

/// Declares a Graph string enum that keeps unknown values in `Other`.
macro_rules! graph_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $variant:ident => $wire:literal ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $variant, )*
            /// A value this version of caguard does not know, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// Every value Graph documents for this enum.
            pub const KNOWN: &'static [&'static str] = &[$($wire),*];

            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )*
                    Self::Unknown(s) => s,
                }
            }

            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Unknown(_))
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $( $wire => Self::$variant, )*
                    other => Self::Unknown(other.to_string()),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(s.parse().expect("infallible"))
            }
        }
    };
}

pub(crate) use graph_enum;
pub(crate) use graph_object;

/// One page of a Graph collection (`value` plus `@odata.nextLink`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Collection<T> {
    #[serde(rename = "@odata.context", default, skip_serializing_if = "Maybe::is_absent")]
    pub context: Maybe<String>,
    #[serde(rename = "@odata.nextLink", default, skip_serializing_if = "Maybe::is_absent")]
    pub next_link: Maybe<String>,
    pub value: Vec<T>,
    #[serde(flatten)]
    pub extra: Extra,
}
