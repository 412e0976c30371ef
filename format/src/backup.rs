//! A backup's catalog: the list of files one backup is made of, each with
//! its size, CRC-32C and where the backup directory keeps it (SPEC §13.7).
//!
//! The catalog is text, one record per line, so an operator can read it:
//!
//! ```text
//! strata-backup 1
//! id 3
//! created 1764856200000
//! ts 1764856200000123456
//! file 000012.sst 4194304 1a2b3c4d shared/000012-00112233445566778899aabbccddeeff.sst
//! file 000015.log 8123 0badf00d backups/000003/000015.log
//! end 89abcdef
//! ```
//!
//! `end` holds the CRC-32C of every byte before its line. A decoder takes
//! untrusted bytes: every field is checked, a stored path may only name a
//! file under `shared/` or the backup's own directory, and an error names
//! the line's offset.

use crate::error::{Error, Result};

/// The first line of every catalog.
pub const MAGIC: &str = "strata-backup 1";

/// The most files one catalog may list (a guard against a damaged count,
/// far above any real database's file count).
pub const MAX_FILES: usize = 1 << 20;

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogFile {
    /// Its name in the database directory (`000012.sst`, `CURRENT`).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// CRC-32C of its bytes.
    pub crc32c: u32,
    /// Where the backup directory keeps it, relative to that directory.
    pub stored_as: String,
}

/// What one backup is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// The backup's id: 1, 2, … in the order backups were made.
    pub id: u64,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The commit timestamp it holds everything up to.
    pub ts: u64,
    /// Its files.
    pub files: Vec<CatalogFile>,
}

/// Whether `name` is a plain file name: no separator, not `.`/`..`, no
/// whitespace or control characters (lines are split on spaces).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != '\\')
}

/// The directory of backup `id`'s own files, relative to the backup
/// directory.
pub fn private_dir(id: u64) -> String {
    format!("backups/{id:06}")
}

/// Whether `stored_as` names a file backup `id` may use: `shared/<name>`
/// or `<private_dir(id)>/<name>`.
pub fn is_valid_location(id: u64, stored_as: &str) -> bool {
    if let Some(name) = stored_as.strip_prefix("shared/") {
        return is_plain_name(name);
    }
    let own = private_dir(id);
    stored_as
        .strip_prefix(own.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(is_plain_name)
}

impl Catalog {
    /// The catalog as text.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{MAGIC}\nid {}\ncreated {}\nts {}\n",
            self.id, self.created_ms, self.ts
        );
        for f in &self.files {
            out.push_str(&format!(
                "file {} {} {:08x} {}\n",
                f.name, f.size, f.crc32c, f.stored_as
            ));
        }
        let crc = crc32c::crc32c(out.as_bytes());
        out.push_str(&format!("end {crc:08x}\n"));
        out.into_bytes()
    }

    /// Decodes a catalog; `what` names it in errors.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Catalog> {
        let bad = |offset: usize, why: &str| Error::Corruption {
            what: format!("{what}: {why}"),
            offset: offset as u64,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| bad(e.valid_up_to(), "not UTF-8"))?;
        let mut id = None;
        let mut created = None;
        let mut ts = None;
        let mut files = Vec::new();
        let mut offset = 0usize;
        let mut lines = text.split_inclusive('\n');
        match lines.next() {
            Some(l) if l.trim_end_matches('\n') == MAGIC => offset += l.len(),
            _ => return Err(bad(0, "not a backup catalog")),
        }
        for line in lines {
            let at = offset;
            offset += line.len();
            let Some(body) = line.strip_suffix('\n') else {
                return Err(bad(at, "the last line is cut short"));
            };
            let fields: Vec<&str> = body.split(' ').collect();
            let num = |s: &str| s.parse::<u64>().map_err(|_| bad(at, "not a number"));
            match fields.as_slice() {
                ["id", v] if id.is_none() => id = Some(num(v)?),
                ["created", v] if created.is_none() => created = Some(num(v)?),
                ["ts", v] if ts.is_none() => ts = Some(num(v)?),
                ["file", name, size, crc, stored_as] => {
                    if files.len() >= MAX_FILES {
                        return Err(bad(at, "too many files"));
                    }
                    if !is_plain_name(name) {
                        return Err(bad(at, "a file name with a path in it"));
                    }
                    let crc32c = parse_crc(crc).ok_or_else(|| bad(at, "not a checksum"))?;
                    let Some(id) = id else {
                        return Err(bad(at, "a file before the id"));
                    };
                    if !is_valid_location(id, stored_as) {
                        return Err(bad(at, "a file stored outside the backup"));
                    }
                    files.push(CatalogFile {
                        name: (*name).to_owned(),
                        size: num(size)?,
                        crc32c,
                        stored_as: (*stored_as).to_owned(),
                    });
                }
                ["end", crc] => {
                    let stored = parse_crc(crc).ok_or_else(|| bad(at, "not a checksum"))?;
                    let computed = crc32c::crc32c(&bytes[..at]);
                    if stored != computed {
                        return Err(Error::Checksum {
                            what: what.to_owned(),
                            offset: at as u64,
                            stored,
                            computed,
                        });
                    }
                    if offset != bytes.len() {
                        return Err(bad(offset, "bytes after the end"));
                    }
                    let (Some(id), Some(created_ms), Some(ts)) = (id, created, ts) else {
                        return Err(bad(at, "the id, creation time or timestamp is missing"));
                    };
                    return Ok(Catalog {
                        id,
                        created_ms,
                        ts,
                        files,
                    });
                }
                _ => return Err(bad(at, "an unknown or repeated line")),
            }
        }
        Err(bad(offset, "no end line: the catalog is cut short"))
    }
}

fn parse_crc(s: &str) -> Option<u32> {
    // One spelling per value: eight lowercase hex digits.
    if s.len() != 8
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Catalog {
        Catalog {
            id: 3,
            created_ms: 1_764_856_200_000,
            ts: 42,
            files: vec![
                CatalogFile {
                    name: "000012.sst".into(),
                    size: 4096,
                    crc32c: 0x1a2b_3c4d,
                    stored_as: "shared/000012-00ff.sst".into(),
                },
                CatalogFile {
                    name: "CURRENT".into(),
                    size: 16,
                    crc32c: 7,
                    stored_as: "backups/000003/CURRENT".into(),
                },
            ],
        }
    }

    #[test]
    fn catalogs_round_trip() {
        let c = sample();
        assert_eq!(Catalog::decode(&c.encode(), "c").unwrap(), c);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error() {
        let bytes = sample().encode();
        for n in 0..bytes.len() {
            assert!(Catalog::decode(&bytes[..n], "c").is_err(), "cut at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(Catalog::decode(&b, "c").is_err(), "flip at {i}");
        }
    }

    #[test]
    fn the_fuzz_seed_is_a_valid_catalog() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/seeds/backup_catalog/valid"
        );
        let c = Catalog::decode(&std::fs::read(path).unwrap(), "seed").unwrap();
        assert_eq!(c.files.len(), 2);
    }

    #[test]
    fn files_outside_the_backup_are_refused() {
        for bad in [
            "../x",
            "shared/../../etc/passwd",
            "backups/000004/CURRENT",
            "backups/000003/a/b",
            "/etc/passwd",
            "shared/",
        ] {
            let mut c = sample();
            c.files[0].stored_as = bad.into();
            let e = Catalog::decode(&c.encode(), "c").unwrap_err();
            assert!(e.to_string().contains("outside"), "{bad}: {e}");
        }
        let mut c = sample();
        c.files[0].name = "../CURRENT".into();
        assert!(Catalog::decode(&c.encode(), "c").is_err());
    }
}
