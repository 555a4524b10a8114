//! `multipart/byteranges` framing (RFC 9110 §14.6): the bytes around each part, computed up front so the
//! response carries an exact `Content-Length` while the parts themselves stream from S3 one after another.

use bytes::Bytes;

use super::range::ByteRange;

#[derive(Debug, Clone)]
pub struct Multipart {
    boundary: String,
    content_type: String,
    size: u64,
}

impl Multipart {
    pub fn new(boundary: String, content_type: &str, size: u64) -> Self {
        Self { boundary, content_type: content_type.to_string(), size }
    }

    /// The response's `Content-Type`.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The delimiter and headers written before part `index`.
    pub fn part_header(&self, index: usize, range: &ByteRange) -> Bytes {
        let lead = if index == 0 { "" } else { "\r\n" };
        Bytes::from(format!(
            "{lead}--{}\r\nContent-Type: {}\r\nContent-Range: {}\r\n\r\n",
            self.boundary,
            self.content_type,
            range.content_range(self.size)
        ))
    }

    /// The close delimiter after the last part.
    pub fn closing(&self) -> Bytes {
        Bytes::from(format!("\r\n--{}--\r\n", self.boundary))
    }

    /// The length of the whole body.
    pub fn content_length(&self, ranges: &[ByteRange]) -> u64 {
        let framing: u64 = ranges.iter().enumerate().map(|(i, r)| self.part_header(i, r).len() as u64).sum();
        framing + ranges.iter().map(ByteRange::byte_count).sum::<u64>() + self.closing().len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_9110_example_shape_with_an_exact_length() {
        let data: Vec<u8> = (0..100u8).collect();
        let ranges = [ByteRange { start: 0, end: 9 }, ByteRange { start: 90, end: 99 }];
        let multipart = Multipart::new("THIS_STRING_SEPARATES".into(), "image/gif", 100);
        let mut body = Vec::new();
        for (i, range) in ranges.iter().enumerate() {
            body.extend_from_slice(&multipart.part_header(i, range));
            body.extend_from_slice(&data[range.start as usize..=range.end as usize]);
        }
        body.extend_from_slice(&multipart.closing());

        let mut expected =
            b"--THIS_STRING_SEPARATES\r\nContent-Type: image/gif\r\nContent-Range: bytes 0-9/100\r\n\r\n".to_vec();
        expected.extend(0..10u8);
        expected.extend_from_slice(
            b"\r\n--THIS_STRING_SEPARATES\r\nContent-Type: image/gif\r\nContent-Range: bytes 90-99/100\r\n\r\n",
        );
        expected.extend(90..100u8);
        expected.extend_from_slice(b"\r\n--THIS_STRING_SEPARATES--\r\n");
        assert_eq!(body, expected);
        assert_eq!(multipart.content_length(&ranges), body.len() as u64);
        assert_eq!(multipart.content_type(), "multipart/byteranges; boundary=THIS_STRING_SEPARATES");
    }
}
