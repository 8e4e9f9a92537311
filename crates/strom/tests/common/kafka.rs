//! A blocking Kafka client for tests of the real binary: one request at a time on one
//! connection, bounded by socket timeouts, kafka-protocol's client-side types.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

pub struct KafkaClient {
    stream: TcpStream,
    correlation_id: i32,
}

impl KafkaClient {
    pub fn connect(addr: &str) -> std::io::Result<KafkaClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(KafkaClient {
            stream,
            correlation_id: 0,
        })
    }

    pub fn send<R>(&mut self, version: i16, body: R) -> std::io::Result<R::Response>
    where
        R: Request + Encodable,
        R::Response: Decodable,
    {
        self.correlation_id += 1;
        let api = ApiKey::try_from(R::KEY).map_err(|_| std::io::Error::other("unknown api"))?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("strom-test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        body.encode(&mut buf, version)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut framed = BytesMut::new();
        framed.put_i32(buf.len() as i32);
        framed.put_slice(&buf);
        self.stream.write_all(&framed)?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        self.stream.read_exact(&mut body)?;
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if header.correlation_id != self.correlation_id {
            return Err(std::io::Error::other("correlation id mismatch"));
        }
        let response = R::Response::decode(&mut body, version)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if body.remaining() != 0 {
            return Err(std::io::Error::other("trailing bytes in response"));
        }
        Ok(response)
    }
}
