//! Confluent's wire format for serialized values (a magic byte 0, the schema id as a
//! 4-byte big-endian integer, then the encoded value) and Avro values to and from JSON,
//! for the command line's `--value-format avro`.

use apache_avro::types::Value as AvroValue;

use crate::schema::avro::AvroSchema;

/// The first byte of a value in Confluent's wire format.
pub const MAGIC: u8 = 0;
/// Largest allocation decoding one untrusted Avro value may make (a length read from the
/// data never sizes more than this).
pub const AVRO_ALLOCATION_BYTES_MAX: usize = 64 * 1024 * 1024;

/// `payload` behind the 5-byte header naming schema `id`.
pub fn frame(id: i32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The schema id and payload of a framed value (`None`: not in the wire format).
pub fn unframe(bytes: &[u8]) -> Option<(i32, &[u8])> {
    if bytes.len() < 5 || bytes[0] != MAGIC {
        return None;
    }
    let id = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Some((id, &bytes[5..]))
}

/// Avro binary encoding of a JSON value under `schema`.
pub fn avro_encode(schema: &AvroSchema, json: &serde_json::Value) -> Result<Vec<u8>, String> {
    let refs: Vec<&apache_avro::Schema> = schema.references.iter().collect();
    let value = AvroValue::from(json.clone())
        .resolve_schemata(&schema.schema, refs.clone())
        .map_err(|e| format!("the value does not fit the schema: {e}"))?;
    apache_avro::to_avro_datum_schemata(&schema.schema, refs, value).map_err(|e| e.to_string())
}

/// A JSON rendering of an Avro-encoded value written with `schema`.
pub fn avro_decode(schema: &AvroSchema, payload: &[u8]) -> Result<serde_json::Value, String> {
    apache_avro::util::max_allocation_bytes(AVRO_ALLOCATION_BYTES_MAX);
    let refs: Vec<&apache_avro::Schema> = schema.references.iter().collect();
    let mut reader = payload;
    let value = apache_avro::from_avro_datum_schemata(&schema.schema, refs, &mut reader, None)
        .map_err(|e| format!("not a value of schema: {e}"))?;
    serde_json::Value::try_from(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_avro_round_trip() {
        let schema = AvroSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
            &[],
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(r#"{"a":7,"b":"x"}"#).unwrap();
        let payload = avro_encode(&schema, &json).unwrap();
        let framed = frame(42, &payload);
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 42]);
        let (id, body) = unframe(&framed).unwrap();
        assert_eq!(id, 42);
        assert_eq!(avro_decode(&schema, body).unwrap(), json);
        assert!(unframe(&[1, 0, 0, 0, 1]).is_none());
        assert!(avro_encode(&schema, &serde_json::json!({"a": "no"})).is_err());
        assert!(avro_decode(&schema, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
    }
}
