//! Our own deserialization step for request bodies and query strings, so that a refusal says
//! *which* field and *what kind* of problem in words of ours, without reading serde's or axum's
//! message texts (which change between releases).
//!
//! The input is first read into a [`Node`] tree (JSON as parsed by serde_json, or the text
//! pairs of a query string), keeping every key in its order, repeated keys included, so the
//! derived `Deserialize` of a request type sees exactly what it would see from serde_json and
//! reports the same first problem. Its errors are a [`FieldProblem`], whose kind comes from the
//! `serde::de::Error` constructor serde called (`missing_field`, `unknown_field`,
//! `invalid_type`, ...) and whose path is added as the error travels up the tree.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, Visitor};
use serde::Deserialize;

use crate::domain::validation::FieldError;

/// A parsed input value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Str(String),
    /// Text of a query string: a string, or a number or boolean when the target type asks.
    Text(String),
    Seq(Vec<Node>),
    /// An object's entries in their order, repeated keys included.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// The text pairs of a query string, as a map node.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self::Map(pairs.into_iter().map(|(k, v)| (k, Self::Text(v))).collect())
    }

    /// Deserializes `T` from this node.
    ///
    /// # Errors
    /// The first problem the target type found, with the path of the field.
    pub fn into_value<T: DeserializeOwned>(self) -> Result<T, FieldProblem> {
        T::deserialize(self)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;

        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Unsigned(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Signed(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Node>()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }

        deserializer.deserialize_any(NodeVisitor)
    }
}

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// A required field is absent (its name).
    Missing(String),
    /// A field the type does not know, where unknown fields are refused (its name).
    Unknown(String),
    /// A field given twice (its name).
    Repeated(String),
    /// A value of the wrong JSON type: what was given.
    WrongType(&'static str),
    /// Query text that does not parse as the type asked: what was expected.
    NotA(&'static str),
    /// A value of the right type that the type refuses (out of range, not a UUID, ...).
    InvalidValue,
    /// A list of the wrong length.
    WrongLength,
}

/// The first problem found in an input, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The path of the value the problem is in (`roles[0]`), innermost segment last.
    path: Vec<String>,
    kind: ProblemKind,
}

impl FieldProblem {
    fn new(kind: ProblemKind) -> Self {
        Self {
            path: Vec::new(),
            kind,
        }
    }

    /// A required field that is absent.
    pub fn missing(field: &str) -> Self {
        Self::new(ProblemKind::Missing(field.to_owned()))
    }

    /// A field given more than once.
    pub fn repeated(field: &str) -> Self {
        Self::new(ProblemKind::Repeated(field.to_owned()))
    }

    /// The same problem, inside the field or item `segment`.
    fn within(mut self, segment: String) -> Self {
        self.path.insert(0, segment);
        self
    }

    /// The kind of problem.
    pub fn kind(&self) -> &ProblemKind {
        &self.kind
    }

    /// The field the problem is about, as the client named it: `email`, `roles[0]`, or `body`
    /// for the input as a whole.
    pub fn field(&self) -> String {
        let mut field = String::new();
        for segment in &self.path {
            if !field.is_empty() && !segment.starts_with('[') {
                field.push('.');
            }
            field.push_str(segment);
        }
        if let ProblemKind::Missing(name)
        | ProblemKind::Unknown(name)
        | ProblemKind::Repeated(name) = &self.kind
        {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(name);
        }
        if field.is_empty() {
            "body".to_owned()
        } else {
            field
        }
    }

    /// What is wrong, in words of ours, without the field's name.
    pub fn message(&self) -> String {
        match &self.kind {
            ProblemKind::Missing(_) => REQUIRED.to_owned(),
            ProblemKind::Unknown(_) => "is not a known field".to_owned(),
            ProblemKind::Repeated(_) => "is given more than once".to_owned(),
            ProblemKind::WrongType(given) => format!("has the wrong type (got {given})"),
            ProblemKind::NotA(expected) => format!("must be {expected}"),
            ProblemKind::InvalidValue => "has an invalid value".to_owned(),
            ProblemKind::WrongLength => "has the wrong number of items".to_owned(),
        }
    }

    /// The field error answered for it: code `invalid_value`, as for every malformed field.
    pub fn into_field_error(self) -> FieldError {
        FieldError::new(&self.field(), "invalid_value", self.message())
    }
}

/// The message of a missing required field.
pub const REQUIRED: &str = "is required";

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field(), self.message())
    }
}

impl std::error::Error for FieldProblem {}

/// Our words for what a value was.
fn given(unexpected: &de::Unexpected<'_>) -> &'static str {
    use de::Unexpected as U;
    match unexpected {
        U::Bool(_) => "a boolean",
        U::Unsigned(_) | U::Signed(_) | U::Float(_) => "a number",
        U::Char(_) | U::Str(_) => "a string",
        U::Unit | U::Option => "null",
        U::Seq => "an array",
        U::Map => "an object",
        _ => "a value of another kind",
    }
}

impl de::Error for FieldProblem {
    fn custom<T: fmt::Display>(_message: T) -> Self {
        // A type's own refusal (a malformed UUID, ...): its text is not ours to show.
        Self::new(ProblemKind::InvalidValue)
    }
    fn invalid_type(unexpected: de::Unexpected<'_>, _expected: &dyn de::Expected) -> Self {
        Self::new(ProblemKind::WrongType(given(&unexpected)))
    }
    fn invalid_value(_unexpected: de::Unexpected<'_>, _expected: &dyn de::Expected) -> Self {
        Self::new(ProblemKind::InvalidValue)
    }
    fn invalid_length(_len: usize, _expected: &dyn de::Expected) -> Self {
        Self::new(ProblemKind::WrongLength)
    }
    fn unknown_variant(_variant: &str, _expected: &'static [&'static str]) -> Self {
        Self::new(ProblemKind::InvalidValue)
    }
    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        Self::new(ProblemKind::Unknown(field.to_owned()))
    }
    fn missing_field(field: &'static str) -> Self {
        Self::new(ProblemKind::Missing(field.to_owned()))
    }
    fn duplicate_field(field: &'static str) -> Self {
        Self::new(ProblemKind::Repeated(field.to_owned()))
    }
}

/// Parses query text for a typed target, or says what it should have been.
fn parse_text<T: std::str::FromStr>(text: &str, expected: &'static str) -> Result<T, FieldProblem> {
    text.parse()
        .map_err(|_| FieldProblem::new(ProblemKind::NotA(expected)))
}

macro_rules! text_parsing {
    ($($method:ident => $visit:ident: $ty:ty, $expected:literal;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldProblem> {
                match self {
                    Node::Text(text) => visitor.$visit(parse_text::<$ty>(&text, $expected)?),
                    other => other.deserialize_any(visitor),
                }
            }
        )*
    };
}

impl<'de> Deserializer<'de> for Node {
    type Error = FieldProblem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldProblem> {
        match self {
            Node::Null => visitor.visit_unit(),
            Node::Bool(v) => visitor.visit_bool(v),
            Node::Unsigned(v) => visitor.visit_u64(v),
            Node::Signed(v) => visitor.visit_i64(v),
            Node::Float(v) => visitor.visit_f64(v),
            Node::Str(v) | Node::Text(v) => visitor.visit_string(v),
            Node::Seq(items) => visitor.visit_seq(Items(items.into_iter().enumerate())),
            Node::Map(entries) => visitor.visit_map(Entries {
                entries: entries.into_iter(),
                current: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FieldProblem> {
        match self {
            Node::Null => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, FieldProblem> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FieldProblem> {
        match self {
            Node::Str(name) | Node::Text(name) => visitor.visit_enum(name.into_deserializer()),
            other => other.deserialize_any(visitor),
        }
    }

    text_parsing! {
        deserialize_bool => visit_bool: bool, "true or false";
        deserialize_u8 => visit_u8: u8, "a whole number from 0 to 255";
        deserialize_u16 => visit_u16: u16, "a whole number from 0 to 65535";
        deserialize_u32 => visit_u32: u32, "a whole number from 0 to 4294967295";
        deserialize_u64 => visit_u64: u64, "a whole number from 0 to 18446744073709551615";
        deserialize_i8 => visit_i8: i8, "a whole number";
        deserialize_i16 => visit_i16: i16, "a whole number";
        deserialize_i32 => visit_i32: i32, "a whole number";
        deserialize_i64 => visit_i64: i64, "a whole number";
        deserialize_f32 => visit_f32: f32, "a number";
        deserialize_f64 => visit_f64: f64, "a number";
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple tuple_struct map
        struct identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, FieldProblem> for Node {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

/// The items of an array; a problem inside one is reported at `[index]`.
struct Items(std::iter::Enumerate<std::vec::IntoIter<Node>>);

impl<'de> de::SeqAccess<'de> for Items {
    type Error = FieldProblem;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, FieldProblem> {
        let Some((index, item)) = self.0.next() else {
            return Ok(None);
        };
        seed.deserialize(item)
            .map(Some)
            .map_err(|problem| problem.within(format!("[{index}]")))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The entries of an object; a problem inside a value is reported at its key.
struct Entries {
    entries: std::vec::IntoIter<(String, Node)>,
    current: Option<(String, Node)>,
}

impl<'de> de::MapAccess<'de> for Entries {
    type Error = FieldProblem;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FieldProblem> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let parsed = seed.deserialize(Node::Str(key.clone()))?;
        self.current = Some((key, value));
        Ok(Some(parsed))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, FieldProblem> {
        let (key, value) = self
            .current
            .take()
            .ok_or_else(|| FieldProblem::new(ProblemKind::InvalidValue))?;
        seed.deserialize(value)
            .map_err(|problem| problem.within(key))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
#[path = "fields_tests.rs"]
mod tests;
