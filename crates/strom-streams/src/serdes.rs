//! Serdes: how keys and values become bytes and back. A [`Serde`] sees the wire form
//! (`None` is Kafka's null); the built-in ones refuse null except [`UnitSerde`] and
//! [`NullableSerde`]. Kafka's encodings are kept where Kafka has them (`i64` is 8 bytes
//! big-endian like `Serdes.Long()`, strings are UTF-8).

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;

/// Why bytes did not convert.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SerdeError(pub String);

/// Serializer and deserializer of one type.
pub trait Serde<T>: Send + Sync + 'static {
    /// The record bytes of `value` (`None`: null).
    fn serialize(&self, value: &T) -> Result<Option<Bytes>, SerdeError>;
    /// The value of record bytes (`None`: the record had null there).
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError>;
}

/// A shared serde, as operators keep them.
pub type SerdeRef<T> = Arc<dyn Serde<T>>;

fn need<'a>(data: Option<&'a [u8]>, what: &str) -> Result<&'a [u8], SerdeError> {
    data.ok_or_else(|| SerdeError(format!("null where a {what} was expected")))
}

/// UTF-8 strings.
#[derive(Debug, Default, Clone, Copy)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, value: &String) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(value.as_bytes())))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<String, SerdeError> {
        let bytes = need(data, "string")?;
        String::from_utf8(bytes.to_vec()).map_err(|e| SerdeError(format!("not UTF-8: {e}")))
    }
}

/// Raw bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct BytesSerde;

impl Serde<Bytes> for BytesSerde {
    fn serialize(&self, value: &Bytes) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(value.clone()))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Bytes, SerdeError> {
        Ok(Bytes::copy_from_slice(need(data, "byte string")?))
    }
}

/// 8-byte big-endian integers (Kafka's `Serdes.Long()`).
#[derive(Debug, Default, Clone, Copy)]
pub struct I64Serde;

impl Serde<i64> for I64Serde {
    fn serialize(&self, value: &i64) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(&value.to_be_bytes())))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<i64, SerdeError> {
        let b = need(data, "64-bit integer")?;
        let arr: [u8; 8] = b
            .try_into()
            .map_err(|_| SerdeError(format!("{} bytes, a long has 8", b.len())))?;
        Ok(i64::from_be_bytes(arr))
    }
}

/// 4-byte big-endian integers (Kafka's `Serdes.Integer()`).
#[derive(Debug, Default, Clone, Copy)]
pub struct I32Serde;

impl Serde<i32> for I32Serde {
    fn serialize(&self, value: &i32) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(&value.to_be_bytes())))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<i32, SerdeError> {
        let b = need(data, "32-bit integer")?;
        let arr: [u8; 4] = b
            .try_into()
            .map_err(|_| SerdeError(format!("{} bytes, an integer has 4", b.len())))?;
        Ok(i32::from_be_bytes(arr))
    }
}

/// 8-byte IEEE 754 doubles (Kafka's `Serdes.Double()`).
#[derive(Debug, Default, Clone, Copy)]
pub struct F64Serde;

impl Serde<f64> for F64Serde {
    fn serialize(&self, value: &f64) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(&value.to_bits().to_be_bytes())))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<f64, SerdeError> {
        let b = need(data, "double")?;
        let arr: [u8; 8] = b
            .try_into()
            .map_err(|_| SerdeError(format!("{} bytes, a double has 8", b.len())))?;
        Ok(f64::from_bits(u64::from_be_bytes(arr)))
    }
}

/// `()` for keys or values that are always null (Kafka's `Serdes.Void()`); whatever the
/// record holds is ignored on read.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitSerde;

impl Serde<()> for UnitSerde {
    fn serialize(&self, _value: &()) -> Result<Option<Bytes>, SerdeError> {
        Ok(None)
    }
    fn deserialize(&self, _data: Option<&[u8]>) -> Result<(), SerdeError> {
        Ok(())
    }
}

/// `Option<T>` over a serde of `T`: `None` is null.
pub struct NullableSerde<T> {
    inner: SerdeRef<T>,
}

impl<T: 'static> Serde<Option<T>> for NullableSerde<T> {
    fn serialize(&self, value: &Option<T>) -> Result<Option<Bytes>, SerdeError> {
        match value {
            Some(v) => self.inner.serialize(v),
            None => Ok(None),
        }
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        match data {
            Some(_) => self.inner.deserialize(data).map(Some),
            None => Ok(None),
        }
    }
}

/// JSON through serde.
pub struct JsonSerde<T>(PhantomData<fn() -> T>);

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        JsonSerde(PhantomData)
    }
}

impl<T> Serde<T> for JsonSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, value: &T) -> Result<Option<Bytes>, SerdeError> {
        serde_json::to_vec(value)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| SerdeError(format!("JSON: {e}")))
    }
    fn deserialize(&self, data: Option<&[u8]>) -> Result<T, SerdeError> {
        serde_json::from_slice(need(data, "JSON document")?)
            .map_err(|e| SerdeError(format!("JSON: {e}")))
    }
}

/// Constructors of the built-in serdes.
pub struct Serdes;

impl Serdes {
    pub fn string() -> SerdeRef<String> {
        Arc::new(StringSerde)
    }
    pub fn bytes() -> SerdeRef<Bytes> {
        Arc::new(BytesSerde)
    }
    pub fn i64() -> SerdeRef<i64> {
        Arc::new(I64Serde)
    }
    pub fn i32() -> SerdeRef<i32> {
        Arc::new(I32Serde)
    }
    pub fn f64() -> SerdeRef<f64> {
        Arc::new(F64Serde)
    }
    pub fn unit() -> SerdeRef<()> {
        Arc::new(UnitSerde)
    }
    pub fn json<T>() -> SerdeRef<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        Arc::new(JsonSerde::<T>::default())
    }
    pub fn nullable<T: 'static>(inner: SerdeRef<T>) -> SerdeRef<Option<T>> {
        Arc::new(NullableSerde { inner })
    }
}

/// Serializes a value that must not be null (a store key or value).
pub(crate) fn to_bytes<T: 'static>(
    serde: &dyn Serde<T>,
    value: &T,
    what: &str,
) -> crate::Result<Bytes> {
    serde
        .serialize(value)
        .map_err(|e| crate::StreamsError::Serde {
            what: what.to_string(),
            reason: e.0,
        })?
        .ok_or_else(|| crate::StreamsError::Serde {
            what: what.to_string(),
            reason: "serialized to null, which a state store cannot hold".into(),
        })
}

pub(crate) fn from_bytes<T: 'static>(
    serde: &dyn Serde<T>,
    data: &[u8],
    what: &str,
) -> crate::Result<T> {
    serde
        .deserialize(Some(data))
        .map_err(|e| crate::StreamsError::Serde {
            what: what.to_string(),
            reason: e.0,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_round_trip_and_match_kafka_bytes() {
        assert_eq!(
            Serdes::i64().serialize(&1).unwrap().unwrap().as_ref(),
            &[0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            Serdes::i64()
                .deserialize(Some(&[0, 0, 0, 0, 0, 0, 1, 0]))
                .unwrap(),
            256
        );
        assert!(Serdes::i64().deserialize(Some(&[1])).is_err());
        assert_eq!(Serdes::i32().deserialize(Some(&[0, 0, 0, 7])).unwrap(), 7);
        assert_eq!(
            Serdes::f64()
                .deserialize(Serdes::f64().serialize(&1.5).unwrap().as_deref())
                .unwrap(),
            1.5
        );
        assert_eq!(Serdes::string().deserialize(Some(b"hi")).unwrap(), "hi");
        assert!(Serdes::string().deserialize(None).is_err());
        assert!(Serdes::string().deserialize(Some(&[0xff])).is_err());
        assert_eq!(Serdes::unit().serialize(&()).unwrap(), None);
        let n = Serdes::nullable(Serdes::string());
        assert_eq!(n.deserialize(None).unwrap(), None);
        assert_eq!(
            n.serialize(&Some("a".into())).unwrap().as_deref(),
            Some(&b"a"[..])
        );
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct P {
            x: i32,
        }
        let j = Serdes::json::<P>();
        let b = j.serialize(&P { x: 3 }).unwrap().unwrap();
        assert_eq!(&b[..], br#"{"x":3}"#);
        assert_eq!(j.deserialize(Some(&b)).unwrap(), P { x: 3 });
        assert!(j.deserialize(Some(b"{")).is_err());
    }
}
