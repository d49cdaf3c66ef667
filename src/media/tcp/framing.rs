//! RFC 4571 framing: on an ICE-TCP connection every STUN message, DTLS record and SRTP/SRTCP
//! packet travels as a 2-byte big-endian length followed by that many bytes.
//!
//! RFC 4571 allows frames up to 65535 bytes; no peer connection of ours sends or needs more
//! than a datagram's worth (str0m and browsers keep packets under about 1200 bytes), so a
//! longer frame is refused ([`MAX_FRAME_BYTES`]) and the connection closed: a stranger cannot
//! make the server buffer 64 KiB per connection, and an empty frame (which carries nothing a
//! peer connection sends) is refused too.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame accepted: an Ethernet MTU's worth, more than any packet a peer connection
/// sends.
pub const MAX_FRAME_BYTES: usize = 1500;

/// Why no frame was read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the frame's length is {0}, not 1 to {MAX_FRAME_BYTES}")]
    BadLength(usize),
    /// The connection ended (between frames, or within one) or failed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame into `buf` (replacing its contents). Not cancel-safe: a frame abandoned half
/// way leaves the stream in the middle of it, so a caller that gives up (a deadline) closes the
/// connection.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let mut header = [0u8; 2];
    reader.read_exact(&mut header).await?;
    let len = usize::from(u16::from_be_bytes(header));
    if len == 0 || len > MAX_FRAME_BYTES {
        return Err(FrameError::BadLength(len));
    }
    buf.clear();
    buf.resize(len, 0);
    reader.read_exact(buf).await?;
    Ok(())
}

/// The header of a frame of `len` bytes; None if RFC 4571 cannot carry it.
pub fn header(len: usize) -> Option<[u8; 2]> {
    u16::try_from(len).ok().map(u16::to_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut reader = bytes;
        let mut buf = vec![9; 3];
        read_frame(&mut reader, &mut buf).await.map(|_| buf)
    }

    #[tokio::test]
    async fn frames_are_read_whole_and_bounded() {
        assert_eq!(read(&[0, 3, 1, 2, 3, 4]).await.unwrap(), vec![1, 2, 3]);
        let mut max = header(MAX_FRAME_BYTES).unwrap().to_vec();
        max.extend(std::iter::repeat_n(7, MAX_FRAME_BYTES));
        assert_eq!(read(&max).await.unwrap().len(), MAX_FRAME_BYTES);
        let mut over = header(MAX_FRAME_BYTES + 1).unwrap().to_vec();
        over.extend(std::iter::repeat_n(7, MAX_FRAME_BYTES + 1));
        assert!(matches!(
            read(&over).await,
            Err(FrameError::BadLength(1501))
        ));
        assert!(matches!(read(&[0, 0]).await, Err(FrameError::BadLength(0))));
        assert!(
            matches!(read(&[0, 4, 1, 2]).await, Err(FrameError::Io(_))),
            "cut short"
        );
        assert!(matches!(read(&[0]).await, Err(FrameError::Io(_))));
        assert_eq!(header(65_535), Some([0xff, 0xff]));
        assert_eq!(header(65_536), None);
    }
}
