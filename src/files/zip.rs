//! A minimal zip writer: stored (uncompressed) entries with CRC-32, UTF-8
//! names, and zip64 end records when the archive passes 65 535 entries or
//! 4 GiB. It writes entry by entry to any `Write`, keeping the central
//! directory in a second, seekable sink (a temporary file in production)
//! rather than in memory, so the memory used does not grow with the number
//! of entries.
//!
//! It is used for trajectory downloads, whose entries are small JSON
//! documents; a single entry of 4 GiB or more is refused.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::{SystemTime, UNIX_EPOCH};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIR: u32 = 0x0605_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// General-purpose flag: names are UTF-8.
const FLAG_UTF8: u16 = 0x0800;
/// Version made by: Unix, spec 4.5.
const MADE_BY: u16 = (3 << 8) | 45;
/// Central records are written to their sink in batches of this size.
const PENDING_FLUSH: usize = 64 * 1024;

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE 802.3, as zip uses it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

/// MS-DOS time and date fields for a moment (UTC), clamped to 1980..=2107.
pub fn dos_datetime(t: SystemTime) -> (u16, u16) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if year < 1980 {
        return (0, (1 << 5) | 1);
    }
    let year = year.min(2107);
    let time = ((rem / 3600) << 11) | (((rem % 3600) / 60) << 5) | ((rem % 60) / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (time as u16, date as u16)
}

/// Writes a stored zip; see the module documentation.
pub struct ZipWriter<W: Write, C: Read + Write + Seek> {
    out: W,
    central: C,
    /// Central records not yet written to `central`.
    pending: Vec<u8>,
    offset: u64,
    central_len: u64,
    entries: u64,
    time: u16,
    date: u16,
}

fn too_big() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "zip entry of 4 GiB or more is not supported",
    )
}

impl<W: Write, C: Read + Write + Seek> ZipWriter<W, C> {
    /// A writer emitting to `out`, keeping its central directory in
    /// `central` (which must be empty), with every entry dated `modified`.
    pub fn new(out: W, central: C, modified: SystemTime) -> Self {
        let (time, date) = dos_datetime(modified);
        ZipWriter {
            out,
            central,
            pending: Vec::new(),
            offset: 0,
            central_len: 0,
            entries: 0,
            time,
            date,
        }
    }

    /// Adds a directory entry (`name` should end with `/`).
    pub fn add_dir(&mut self, name: &str) -> io::Result<()> {
        self.add(name, &[], (0o040_755 << 16) | 0x10)
    }

    /// Adds a file entry.
    pub fn add_file(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.add(name, data, 0o100_644 << 16)
    }

    fn add(&mut self, name: &str, data: &[u8], external: u32) -> io::Result<()> {
        let size = u32::try_from(data.len()).map_err(|_| too_big())?;
        if size == u32::MAX {
            return Err(too_big());
        }
        let name_len = u16::try_from(name.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "zip entry name too long"))?;
        let crc = crc32(data);

        let mut local = Vec::with_capacity(30 + name.len());
        local.extend_from_slice(&LOCAL_HEADER.to_le_bytes());
        local.extend_from_slice(&20u16.to_le_bytes());
        local.extend_from_slice(&FLAG_UTF8.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes()); // stored
        local.extend_from_slice(&self.time.to_le_bytes());
        local.extend_from_slice(&self.date.to_le_bytes());
        local.extend_from_slice(&crc.to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&size.to_le_bytes());
        local.extend_from_slice(&name_len.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        local.extend_from_slice(name.as_bytes());
        self.out.write_all(&local)?;
        self.out.write_all(data)?;

        // The local header offset needs a zip64 extra field once it no
        // longer fits in 32 bits.
        let far = self.offset >= u64::from(u32::MAX);
        let mut central = Vec::with_capacity(46 + name.len() + 12);
        central.extend_from_slice(&CENTRAL_HEADER.to_le_bytes());
        central.extend_from_slice(&MADE_BY.to_le_bytes());
        central.extend_from_slice(&(if far { 45u16 } else { 20 }).to_le_bytes());
        central.extend_from_slice(&FLAG_UTF8.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&self.time.to_le_bytes());
        central.extend_from_slice(&self.date.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&(if far { 12u16 } else { 0 }).to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&external.to_le_bytes());
        let offset32 = if far { u32::MAX } else { self.offset as u32 };
        central.extend_from_slice(&offset32.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
        if far {
            central.extend_from_slice(&1u16.to_le_bytes());
            central.extend_from_slice(&8u16.to_le_bytes());
            central.extend_from_slice(&self.offset.to_le_bytes());
        }
        self.pending.extend_from_slice(&central);
        if self.pending.len() >= PENDING_FLUSH {
            self.central.write_all(&self.pending)?;
            self.pending.clear();
        }

        self.offset += local.len() as u64 + data.len() as u64;
        self.central_len += central.len() as u64;
        self.entries += 1;
        Ok(())
    }

    /// Appends the central directory and end records; returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.central.write_all(&self.pending)?;
        self.central.flush()?;
        self.central.seek(SeekFrom::Start(0))?;
        let copied = io::copy(
            &mut (&mut self.central).take(self.central_len),
            &mut self.out,
        )?;
        if copied != self.central_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "central directory was truncated",
            ));
        }
        let cd_offset = self.offset;
        let cd_len = self.central_len;
        let zip64 = self.entries >= u64::from(u16::MAX)
            || cd_offset >= u64::from(u32::MAX)
            || cd_len >= u64::from(u32::MAX);
        let mut end = Vec::with_capacity(56 + 20 + 22);
        if zip64 {
            let zip64_end_offset = cd_offset + cd_len;
            end.extend_from_slice(&ZIP64_END.to_le_bytes());
            end.extend_from_slice(&44u64.to_le_bytes());
            end.extend_from_slice(&MADE_BY.to_le_bytes());
            end.extend_from_slice(&45u16.to_le_bytes());
            end.extend_from_slice(&0u32.to_le_bytes());
            end.extend_from_slice(&0u32.to_le_bytes());
            end.extend_from_slice(&self.entries.to_le_bytes());
            end.extend_from_slice(&self.entries.to_le_bytes());
            end.extend_from_slice(&cd_len.to_le_bytes());
            end.extend_from_slice(&cd_offset.to_le_bytes());
            end.extend_from_slice(&ZIP64_LOCATOR.to_le_bytes());
            end.extend_from_slice(&0u32.to_le_bytes());
            end.extend_from_slice(&zip64_end_offset.to_le_bytes());
            end.extend_from_slice(&1u32.to_le_bytes());
        }
        let entries16 = u16::try_from(self.entries)
            .ok()
            .filter(|_| !zip64)
            .unwrap_or(u16::MAX);
        let cd_len32 = if zip64 { u32::MAX } else { cd_len as u32 };
        let cd_offset32 = if zip64 { u32::MAX } else { cd_offset as u32 };
        end.extend_from_slice(&END_OF_CENTRAL_DIR.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        end.extend_from_slice(&entries16.to_le_bytes());
        end.extend_from_slice(&entries16.to_le_bytes());
        end.extend_from_slice(&cd_len32.to_le_bytes());
        end.extend_from_slice(&cd_offset32.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes());
        self.out.write_all(&end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn crc_matches_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn dos_dates() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_614_456); // 2026-11-25 13:47:36 UTC
        let (time, date) = dos_datetime(t);
        assert_eq!(date >> 9, 2026 - 1980);
        assert_eq!((date >> 5) & 0xF, 11);
        assert_eq!(date & 0x1F, 25);
        assert_eq!(time >> 11, 13);
        assert_eq!((time >> 5) & 0x3F, 47);
        assert_eq!((time & 0x1F) * 2, 36);
        assert_eq!(dos_datetime(UNIX_EPOCH), (0, 33));
    }

    fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_le_bytes([b[i], b[i + 1]])
    }

    fn u32_at(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
    }

    #[test]
    fn layout_is_readable() {
        let mut z = ZipWriter::new(Vec::new(), Cursor::new(Vec::new()), SystemTime::now());
        z.add_dir("a/").unwrap();
        z.add_file("a/x.json", b"{\"k\":1}").unwrap();
        z.add_file("a/\u{e9}.txt", b"").unwrap();
        let out = z.finish().unwrap();
        let eocd = out.len() - 22;
        assert_eq!(u32_at(&out, eocd), END_OF_CENTRAL_DIR);
        assert_eq!(u16_at(&out, eocd + 10), 3);
        let cd_len = u32_at(&out, eocd + 12) as usize;
        let cd_off = u32_at(&out, eocd + 16) as usize;
        assert_eq!(cd_off + cd_len, eocd);
        // Walk the central directory and check every local entry.
        let mut p = cd_off;
        let mut names = vec![];
        while p < cd_off + cd_len {
            assert_eq!(u32_at(&out, p), CENTRAL_HEADER);
            let crc = u32_at(&out, p + 16);
            let size = u32_at(&out, p + 24) as usize;
            let n = u16_at(&out, p + 28) as usize;
            let extra = u16_at(&out, p + 30) as usize;
            let local = u32_at(&out, p + 42) as usize;
            let name = String::from_utf8(out[p + 46..p + 46 + n].to_vec()).unwrap();
            assert_eq!(u32_at(&out, local), LOCAL_HEADER);
            let data_at = local + 30 + u16_at(&out, local + 26) as usize;
            assert_eq!(crc32(&out[data_at..data_at + size]), crc);
            names.push(name);
            p += 46 + n + extra;
        }
        assert_eq!(names, ["a/", "a/x.json", "a/\u{e9}.txt"]);
    }

    #[test]
    fn many_entries_use_zip64_end_records() {
        let mut z = ZipWriter::new(Vec::new(), Cursor::new(Vec::new()), SystemTime::now());
        for i in 0..70_000u32 {
            z.add_file(&format!("e{i}"), b"x").unwrap();
        }
        let out = z.finish().unwrap();
        let eocd = out.len() - 22;
        assert_eq!(u32_at(&out, eocd), END_OF_CENTRAL_DIR);
        assert_eq!(u16_at(&out, eocd + 10), u16::MAX);
        let locator = eocd - 20;
        assert_eq!(u32_at(&out, locator), ZIP64_LOCATOR);
        let z64 = u64::from_le_bytes(out[locator + 8..locator + 16].try_into().unwrap()) as usize;
        assert_eq!(u32_at(&out, z64), ZIP64_END);
        let total = u64::from_le_bytes(out[z64 + 32..z64 + 40].try_into().unwrap());
        assert_eq!(total, 70_000);
    }
}
