//! One byte range of a file, the same value from the request's `Range` header to S3's GetObject.

/// An inclusive byte range `start..=end` inside a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn byte_count(&self) -> u64 {
        self.end - self.start + 1
    }

    /// `bytes a-b/size`, the value of `Content-Range`.
    pub fn content_range(&self, size: u64) -> String {
        format!("bytes {}-{}/{size}", self.start, self.end)
    }

    /// `bytes=a-b`, the value of the `Range` header sent to S3.
    pub fn to_header(&self) -> String {
        format!("bytes={}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values() {
        let r = |start, end| ByteRange { start, end };
        assert_eq!(r(0, 99).content_range(1000), "bytes 0-99/1000");
        assert_eq!(r(5, 5).to_header(), "bytes=5-5");
        assert_eq!(r(5, 5).byte_count(), 1);
    }
}
