//! Values stored in the embedded keyspace: one variant per Redis type. Strings live here;
//! each collection type's representation lives next to its commands (`hash_cmds`,
//! `list_cmds`, `set_cmds`, `zset_cmds`) and is boxed so a `Value` stays small.

use bytes::Bytes;

use super::hash_cmds::HashValue;
use super::list_cmds::ListValue;
use super::set_cmds::SetValue;
use super::stream_cmds::stream::StreamValue;
use super::zset_cmds::ZSetValue;

/// How a string is held, reported by OBJECT ENCODING as Redis would report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrEncoding {
    /// Parsed as a 64-bit integer when stored (`int`).
    Int,
    /// An `int` string made by COPY: Redis's dupStringObject never hands out one of its
    /// shared integers, so OBJECT REFCOUNT reports 1 for it. Kept in the value (not the
    /// key's entry) because any write replaces the value, which ends the mark as in Redis.
    PrivateInt,
    /// Short string (≤ 44 bytes) stored by SET-like commands (`embstr`).
    Embstr,
    /// Longer strings, and any string modified in place by APPEND/SETRANGE (`raw`).
    Raw,
}

#[derive(Clone, Debug)]
pub enum Value {
    Str { data: Bytes, encoding: StrEncoding },
    Hash(Box<HashValue>),
    List(Box<ListValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSetValue>),
    Stream(Box<StreamValue>),
}

impl Value {
    /// A string value stored by SET-like commands, with the encoding Redis's
    /// tryObjectEncoding would pick.
    pub fn string(data: Bytes) -> Value {
        let encoding =
            if data.len() <= 20 && crate::backend::embedded::num::parse_i64(&data).is_some() {
                StrEncoding::Int
            } else if data.len() <= 44 {
                StrEncoding::Embstr
            } else {
                StrEncoding::Raw
            };
        Value::Str { data, encoding }
    }

    /// A string modified in place (APPEND, SETRANGE): Redis leaves these `raw`.
    pub fn raw_string(data: Bytes) -> Value {
        Value::Str {
            data,
            encoding: StrEncoding::Raw,
        }
    }

    /// The TYPE command's name for this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str { .. } => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    pub fn encoding_name(&self) -> &'static str {
        match self {
            Value::Str { encoding, .. } => match encoding {
                StrEncoding::Int | StrEncoding::PrivateInt => "int",
                StrEncoding::Embstr => "embstr",
                StrEncoding::Raw => "raw",
            },
            Value::Hash(h) => h.encoding_name(),
            Value::List(l) => l.encoding_name(),
            Value::Set(v) => v.encoding_name(),
            Value::ZSet(z) => z.encoding_name(),
            Value::Stream(x) => x.encoding_name(),
        }
    }

    /// A deep copy (COPY's dupStringObject): never shares buffers with the original, and
    /// an integer string becomes a private object ([`StrEncoding::PrivateInt`]).
    pub fn duplicate(&self) -> Value {
        match self {
            Value::Str { data, encoding } => Value::Str {
                data: Bytes::copy_from_slice(data),
                encoding: match encoding {
                    StrEncoding::Int | StrEncoding::PrivateInt => StrEncoding::PrivateInt,
                    other => *other,
                },
            },
            other => other.clone(),
        }
    }

    /// Would Redis hold this value as one of its shared integer objects (0..10000, stored
    /// with refcount INT_MAX)? Only values created by SET-like commands; COPY's duplicates
    /// are [`StrEncoding::PrivateInt`].
    pub fn is_shared_integer(&self) -> bool {
        match self {
            Value::Str {
                data,
                encoding: StrEncoding::Int,
            } => crate::backend::embedded::num::parse_i64(data)
                .is_some_and(|v| (0..10_000).contains(&v)),
            _ => false,
        }
    }

    /// Approximate bytes this value costs; O(1) (collections keep their size up to date
    /// as they change), so it can be recomputed after every write.
    pub fn approx_size(&self) -> usize {
        match self {
            Value::Str { data, .. } => data.len() + 16,
            Value::Hash(h) => h.mem_size(),
            Value::List(l) => l.mem_size(),
            Value::Set(v) => v.mem_size(),
            Value::ZSet(z) => z.mem_size(),
            Value::Stream(x) => x.mem_size(),
        }
    }

    pub fn as_str(&self) -> Option<&Bytes> {
        match self {
            Value::Str { data, .. } => Some(data),
            _ => None,
        }
    }
}
