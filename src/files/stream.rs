//! A file's bytes as a response body, read on the blocking pool in large
//! chunks.
//!
//! actix-files reads 64 KiB per hop to the blocking pool; a gigabyte is
//! then sixteen thousand hops, and on a busy machine the hops, not the
//! disk, set the pace. Reading [`CHUNK`] at a time keeps the pool traffic
//! low while memory stays bounded: one chunk is read ahead of the socket
//! at most, per download. Reads are positioned (`pread`), so the stream
//! does not depend on, or move, the descriptor's offset.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use actix_web::body::SizedStream;
use actix_web::web::{self, Bytes};
use futures_util::stream::{self, Stream};

/// Bytes read per hop to the blocking pool.
pub const CHUNK: usize = 1024 * 1024;

/// `len` bytes of `file` from `offset`, as a body with that length. A file
/// that shrinks while it is sent ends the body with an error (the client
/// sees a short response, never bytes from elsewhere).
pub fn sized_body(
    file: File,
    offset: u64,
    len: u64,
) -> SizedStream<impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static> {
    SizedStream::new(len, chunks(Arc::new(file), offset, len))
}

fn chunks(
    file: Arc<File>,
    offset: u64,
    len: u64,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    stream::unfold((file, offset, len), |(file, pos, left)| async move {
        if left == 0 {
            return None;
        }
        let want = left.min(CHUNK as u64) as usize;
        let reader = file.clone();
        let read = web::block(move || read_at_most(&reader, pos, want)).await;
        let chunk = match read {
            Ok(Ok(buf)) if !buf.is_empty() => buf,
            Ok(Ok(_)) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while it was sent",
                );
                return Some((Err(e.into()), (file, pos, 0)));
            }
            Ok(Err(e)) => return Some((Err(e.into()), (file, pos, 0))),
            Err(e) => return Some((Err(e.into()), (file, pos, 0))),
        };
        let n = chunk.len() as u64;
        Some((Ok(Bytes::from(chunk)), (file, pos + n, left - n)))
    })
}

/// Up to `want` bytes at `pos`; fewer only at the end of the file.
fn read_at_most(file: &File, pos: u64, want: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; want];
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut buf[filled..], pos + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::io::Write;

    async fn collect(file: File, offset: u64, len: u64) -> Result<Vec<u8>, String> {
        let mut out = vec![];
        let mut s = Box::pin(chunks(Arc::new(file), offset, len));
        while let Some(item) = s.next().await {
            out.extend_from_slice(&item.map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    #[actix_web::test]
    async fn streams_a_range_across_chunk_boundaries() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(CHUNK * 2 + 123)).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let all = collect(f.try_clone().unwrap(), 0, data.len() as u64)
            .await
            .unwrap();
        assert_eq!(all, data);
        let part = collect(f, 7, (CHUNK + 10) as u64).await.unwrap();
        assert_eq!(part, &data[7..7 + CHUNK + 10]);
    }

    #[actix_web::test]
    async fn a_file_that_shrank_ends_with_an_error() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[1u8; 100]).unwrap();
        let err = collect(f, 0, 200).await.unwrap_err();
        assert!(err.contains("shrank"), "{err}");
    }
}
