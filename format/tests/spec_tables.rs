//! SPEC.md's tables of numbers, checked against the code in both directions:
//! every row of a table exists in the code with the same number (or offset
//! and size), and every constant of the code has its row. Where the code
//! can show it, the encoders and decoders are checked against the table
//! too, so the table, the constants and the bytes agree.
//!
//! The tables checked: value kinds (§3), block kinds (§5), the SST footer
//! and properties tags (§7), manifest tags (§9), the item header and its
//! flags (§16.1).

use std::sync::Arc;

use strata_format::codec::{BlockKind, EncryptionKey};
use strata_format::coding::put_varint64;
use strata_format::item::{
    decode_item, encode_item, item_checksum, ItemHeader, ITEM_FLAGS, ITEM_HEADER_LAYOUT,
    ITEM_HEADER_LEN, ITEM_VERSION,
};
use strata_format::key::ValueKind;
use strata_format::manifest::{VersionEdit, TAGS};
use strata_format::sst::{
    BlockHandle, Footer, Properties, FOOTER_LAYOUT, FOOTER_LEN, PROPERTY_TAGS, SST_FORMAT_VERSION,
    SST_MAGIC,
};

// ---------------------------------------------------------------------------
// A small parser for the markdown tables of SPEC.md.

/// One row of a table.
struct Row {
    /// Line number in SPEC.md (1-based).
    line: usize,
    /// The row as written.
    text: String,
    /// Cells with backticks and bold markers removed, whitespace collapsed.
    cells: Vec<String>,
}

/// One table and the heading of the section it is in.
struct Table {
    section: String,
    header: Vec<String>,
    rows: Vec<Row>,
}

/// Splits a table line into cells on unescaped `|`.
fn split_cells(line: &str) -> Vec<String> {
    let line = line.trim();
    let line = line.strip_prefix('|').unwrap_or(line);
    let line = line.strip_suffix('|').unwrap_or(line);
    let mut cells = vec![String::new()];
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.iter().map(|c| normalize(c)).collect()
}

fn normalize(cell: &str) -> String {
    let cell = cell.replace('`', "").replace("**", "");
    cell.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_separator(cells: &[String]) -> bool {
    cells
        .iter()
        .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
}

fn parse_tables(spec: &str) -> Vec<Table> {
    let mut tables = Vec::new();
    let mut section = String::new();
    let mut in_code = false;
    let mut current: Option<Table> = None;
    for (i, line) in spec.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_code = !in_code;
        }
        let is_row = !in_code && trimmed.starts_with('|');
        if !is_row {
            tables.extend(current.take());
            if !in_code && trimmed.starts_with('#') {
                section = trimmed.trim_start_matches('#').trim().to_owned();
            }
            continue;
        }
        let cells = split_cells(trimmed);
        match current.as_mut() {
            None => {
                current = Some(Table {
                    section: section.clone(),
                    header: cells,
                    rows: Vec::new(),
                })
            }
            Some(_) if is_separator(&cells) => {}
            Some(t) => t.rows.push(Row {
                line: i + 1,
                text: trimmed.to_owned(),
                cells,
            }),
        }
    }
    tables.extend(current);
    tables
}

fn spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../SPEC.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The one table in the section whose heading starts with `section` that
/// has exactly these column headers.
fn table(section: &str, header: &[&str]) -> Table {
    let spec = spec();
    let mut found: Vec<Table> = parse_tables(&spec)
        .into_iter()
        .filter(|t| t.section.starts_with(section) && t.header == header)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "SPEC.md should have exactly one table with columns {header:?} in section {section:?}"
    );
    found.pop().unwrap()
}

/// Mismatches found so far; the test fails listing them all.
struct Report {
    table: &'static str,
    errors: Vec<String>,
}

impl Report {
    fn new(table: &'static str) -> Self {
        Report {
            table,
            errors: Vec::new(),
        }
    }

    fn row(&mut self, row: &Row, msg: impl std::fmt::Display) {
        self.errors.push(format!(
            "{}: SPEC.md line {}, row `{}`: {msg}",
            self.table, row.line, row.text
        ));
    }

    fn code(&mut self, msg: impl std::fmt::Display) {
        self.errors.push(format!(
            "{}: in the code but not in SPEC.md: {msg}",
            self.table
        ));
    }

    fn check(&mut self, ok: bool, msg: impl std::fmt::Display) {
        if !ok {
            self.errors.push(format!("{}: {msg}", self.table));
        }
    }

    fn finish(self) {
        assert!(
            self.errors.is_empty(),
            "SPEC.md and the code disagree:\n{}",
            self.errors.join("\n")
        );
    }
}

/// A number cell, or an error naming the row.
fn number(report: &mut Report, row: &Row, column: usize) -> Option<u64> {
    let cell = row.cells.get(column).map(String::as_str).unwrap_or("");
    match cell.parse::<u64>() {
        Ok(n) => Some(n),
        Err(_) => {
            report.row(row, format!("column {column} is not a number: {cell:?}"));
            None
        }
    }
}

fn cell(row: &Row, column: usize) -> &str {
    row.cells.get(column).map(String::as_str).unwrap_or("")
}

/// True when a SPEC field description names the code's field: it is the
/// name, or starts with it followed by punctuation or a space.
fn names_field(spec_field: &str, code_name: &str) -> bool {
    let (a, b) = (spec_field.to_lowercase(), code_name.to_lowercase());
    a == b
        || a.strip_prefix(&b)
            .is_some_and(|rest| rest.starts_with(|c: char| !c.is_alphanumeric() && c != '_'))
}

/// A value declared in a field's description as `(N)`, e.g. `version (1)`.
fn declared_value(spec_field: &str) -> Option<u64> {
    let open = spec_field.find('(')?;
    let close = open + spec_field[open..].find(')')?;
    spec_field[open + 1..close].parse().ok()
}

// ---------------------------------------------------------------------------
// Kind tables: name, code, reserved.

/// Checks a kind table both ways. `spec_rows` are (row, name, code,
/// reserved), `code` the same facts from the code.
fn check_kinds(
    report: &mut Report,
    spec_rows: &[(&Row, String, u64, bool)],
    code: &[(String, u64, bool)],
) {
    for (row, name, number, reserved) in spec_rows {
        match code.iter().find(|(n, ..)| n == name) {
            None => report.row(row, format!("no kind named {name} in the code")),
            Some((_, c, r)) => {
                if c != number {
                    report.row(row, format!("the code gives {name} the code {c}"));
                }
                if r != reserved {
                    report.row(
                        row,
                        format!("the code says {name} is reserved: {r}; SPEC says: {reserved}"),
                    );
                }
            }
        }
        if spec_rows.iter().filter(|s| s.2 == *number).count() > 1 {
            report.row(row, format!("code {number} appears more than once"));
        }
    }
    for (name, c, r) in code {
        if !spec_rows.iter().any(|s| &s.1 == name) {
            report.code(format!("kind {name} (code {c}, reserved: {r})"));
        }
    }
}

#[test]
fn value_kinds_match_spec_section_3() {
    let t = table("3.", &["kind", "code", "value holds"]);
    let mut report = Report::new("§3 value kinds");
    let mut spec_rows = Vec::new();
    for row in &t.rows {
        if let Some(code) = number(&mut report, row, 1) {
            let reserved = cell(row, 2).starts_with("reserved");
            spec_rows.push((row, cell(row, 0).to_owned(), code, reserved));
        }
    }
    let code: Vec<_> = ValueKind::ALL
        .iter()
        .map(|&k| (format!("{k:?}"), u64::from(k as u8), k.is_reserved()))
        .collect();
    check_kinds(&mut report, &spec_rows, &code);
    // The decoder accepts exactly the codes SPEC lists as not reserved.
    for b in 0..=u8::MAX {
        let in_spec = spec_rows
            .iter()
            .any(|(_, _, code, reserved)| *code == u64::from(b) && !reserved);
        report.check(
            ValueKind::from_u8(b).is_some() == in_spec,
            format!(
                "ValueKind::from_u8({b}) disagrees with SPEC (listed and not reserved: {in_spec})"
            ),
        );
    }
    report.check(
        spec_rows.iter().map(|s| s.2).max() == Some(u64::from(ValueKind::MAX as u8)),
        "ValueKind::MAX is not the largest code SPEC lists (seek keys use it)",
    );
    report.finish();
}

#[test]
fn block_kinds_match_spec_section_5() {
    let t = table("5.", &["block kind", "code", "BlockKind"]);
    let mut report = Report::new("§5 block kinds");
    let mut spec_rows = Vec::new();
    for row in &t.rows {
        if let Some(code) = number(&mut report, row, 1) {
            let reserved = cell(row, 0).contains("reserved");
            spec_rows.push((row, cell(row, 2).to_owned(), code, reserved));
        }
    }
    let code: Vec<_> = BlockKind::ALL
        .iter()
        .map(|&k| (format!("{k:?}"), u64::from(k as u8), k.is_reserved()))
        .collect();
    check_kinds(&mut report, &spec_rows, &code);
    report.finish();
}

/// §4 names the writer's restart policy in its text, not a table: the
/// interval and the span it states are the builder's.
#[test]
fn restart_policy_matches_spec_section_4() {
    let spec = spec();
    let interval = format!(
        "Every `restart_interval` entries (default {})",
        strata_format::block::DEFAULT_RESTART_INTERVAL
    );
    let span = format!("`RESTART_SPAN` = {}", strata_format::block::RESTART_SPAN);
    let flat = spec.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&interval), "SPEC §4 should say {interval:?}");
    assert!(flat.contains(&span), "SPEC §4 should say {span:?}");
}

// ---------------------------------------------------------------------------

#[test]
fn manifest_tags_match_spec_section_9() {
    let t = table("9.", &["tag", "field", "body"]);
    let mut report = Report::new("§9 manifest tags");
    let mut spec_tags = Vec::new();
    for row in &t.rows {
        let Some(tag) = number(&mut report, row, 0) else {
            continue;
        };
        let field = cell(row, 1);
        spec_tags.push(tag);
        match TAGS.iter().find(|(_, c)| *c == tag) {
            None => report.row(row, format!("no tag {tag} in the code")),
            Some((name, _)) if !name.eq_ignore_ascii_case(field) => {
                report.row(row, format!("the code calls tag {tag} {name:?}"))
            }
            Some(_) => {}
        }
        if t.rows.iter().filter(|r| cell(r, 0) == cell(row, 0)).count() > 1 {
            report.row(row, format!("tag {tag} appears more than once"));
        }
    }
    for (name, tag) in TAGS {
        if !spec_tags.contains(&tag) {
            report.code(format!("tag {tag} ({name})"));
        }
    }
    // The decoder knows exactly the tags SPEC lists: any other is refused
    // as an unknown field.
    for tag in 0..64u64 {
        let mut record = Vec::new();
        put_varint64(&mut record, tag);
        put_varint64(&mut record, 0);
        let unknown = match VersionEdit::decode(&record, 0) {
            Err(e) => e.to_string().contains("unknown field"),
            Ok(_) => false,
        };
        report.check(
            unknown != spec_tags.contains(&tag),
            format!("the decoder's view of tag {tag} (unknown: {unknown}) disagrees with SPEC"),
        );
    }
    report.finish();
}

// ---------------------------------------------------------------------------
// Layout tables: offset, size, field.

/// Checks a layout table both ways against `(name, offset, size)` from the
/// code, and that the rows tile `total` bytes. Returns the SPEC rows as
/// (field, offset, size).
fn check_layout(
    report: &mut Report,
    t: &Table,
    code: &[(&str, usize, usize)],
    total: usize,
) -> Vec<(String, usize, usize)> {
    let mut spec_rows = Vec::new();
    let mut next = 0;
    for row in &t.rows {
        let (Some(offset), Some(size)) = (number(report, row, 0), number(report, row, 1)) else {
            continue;
        };
        let (offset, size) = (offset as usize, size as usize);
        let field = cell(row, 2);
        if offset != next {
            report.row(row, format!("expected the next field at offset {next}"));
        }
        next = offset + size;
        match code.iter().find(|(name, ..)| names_field(field, name)) {
            None => report.row(row, "no such field in the code"),
            Some((name, o, s)) => {
                if (*o, *s) != (offset, size) {
                    report.row(
                        row,
                        format!("the code places {name} at offset {o}, size {s}"),
                    );
                }
            }
        }
        spec_rows.push((field.to_owned(), offset, size));
    }
    report.check(
        next == total,
        format!("the fields end at {next}, the code's length is {total}"),
    );
    for (name, offset, size) in code {
        if !spec_rows.iter().any(|(f, ..)| names_field(f, name)) {
            report.code(format!("field {name} at offset {offset}, size {size}"));
        }
    }
    spec_rows
}

/// The bytes of the field SPEC names `name`, by SPEC's offsets.
fn field<'a>(rows: &[(String, usize, usize)], bytes: &'a [u8], name: &str) -> &'a [u8] {
    let (_, offset, size) = rows
        .iter()
        .find(|(f, ..)| names_field(f, name))
        .unwrap_or_else(|| panic!("SPEC has no field {name}"));
    &bytes[*offset..offset + size]
}

fn declared(rows: &[(String, usize, usize)], name: &str) -> Option<u64> {
    rows.iter()
        .find(|(f, ..)| names_field(f, name))
        .and_then(|(f, ..)| declared_value(f))
}

#[test]
fn sst_property_tags_match_spec_section_7() {
    let t = table("7.", &["tag", "field"]);
    let mut report = Report::new("§7 SST properties");
    let mut spec_tags = Vec::new();
    for row in &t.rows {
        let Some(tag) = number(&mut report, row, 0) else {
            continue;
        };
        spec_tags.push(tag);
        match PROPERTY_TAGS.iter().find(|(c, _)| *c == tag) {
            None => report.row(row, format!("no property tag {tag} in the code")),
            Some((_, name)) if !names_field(cell(row, 1), name) => {
                report.row(row, format!("the code calls tag {tag} {name:?}"))
            }
            Some(_) => {}
        }
    }
    for (tag, name) in PROPERTY_TAGS {
        if !spec_tags.contains(&tag) {
            report.code(format!("property tag {tag} ({name})"));
        }
    }
    report.finish();
    // Every tag the code names is one its encoder writes (given a value)
    // and its decoder reads back.
    let p = Properties {
        entries: 1,
        range_deletions: 2,
        range_deletions_handle: Some(BlockHandle {
            offset: 3,
            size: 40,
        }),
        smallest_key: vec![0; 9],
        largest_key: vec![1; 9],
        ..Properties::default()
    };
    let bytes = p.encode();
    let mut written = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (tag, n) = strata_format::coding::get_varint64(&bytes[at..]).unwrap();
        let (len, m) = strata_format::coding::get_varint64(&bytes[at + n..]).unwrap();
        written.push(tag);
        at += n + m + len as usize;
    }
    for (tag, name) in PROPERTY_TAGS {
        assert!(written.contains(&tag), "tag {tag} ({name}) is not written");
    }
    assert_eq!(Properties::decode(&bytes, 0).unwrap(), p);
}

#[test]
fn sst_footer_matches_spec_section_7() {
    let t = table("7.", &["offset", "size", "field"]);
    let mut report = Report::new("§7 SST footer");
    let rows = check_layout(&mut report, &t, &FOOTER_LAYOUT, FOOTER_LEN);
    report.check(
        declared(&rows, "format version") == Some(u64::from(SST_FORMAT_VERSION)),
        format!("the format version is {SST_FORMAT_VERSION} in the code"),
    );
    report.finish();

    // The encoder puts each field where SPEC says.
    let key = Arc::new(EncryptionKey::new(0x0102_0304, [0x77; 32]));
    for key in [None, Some(key)] {
        let footer = Footer {
            index: BlockHandle {
                offset: 0x1111,
                size: 0x2222,
            },
            filter: BlockHandle {
                offset: 0x3333,
                size: 0x4444,
            },
            properties: BlockHandle {
                offset: 0x5555,
                size: 0x6666,
            },
            file_uid: *b"uid-of-the-file!",
            key_id: key.as_ref().map(|k| k.id()),
            version: SST_FORMAT_VERSION,
        };
        let f = footer.encode(9, 0x9999, key.as_deref()).unwrap();
        let handle = |h: BlockHandle| [h.offset.to_le_bytes(), h.size.to_le_bytes()].concat();
        assert_eq!(field(&rows, &f, "index handle"), handle(footer.index));
        assert_eq!(field(&rows, &f, "filter handle"), handle(footer.filter));
        assert_eq!(
            field(&rows, &f, "properties handle"),
            handle(footer.properties)
        );
        assert_eq!(field(&rows, &f, "file uid"), footer.file_uid);
        assert_eq!(field(&rows, &f, "encryption"), [u8::from(key.is_some())]);
        assert!(field(&rows, &f, "zero").iter().all(|&b| b == 0));
        assert_eq!(
            field(&rows, &f, "key id"),
            footer.key_id.unwrap_or(0).to_le_bytes()
        );
        let mac = field(&rows, &f, "MAC");
        assert_eq!(mac.iter().all(|&b| b == 0), key.is_none());
        assert_eq!(
            field(&rows, &f, "format version"),
            SST_FORMAT_VERSION.to_le_bytes()
        );
        let crc_at = rows
            .iter()
            .find(|(n, ..)| names_field(n, "crc32c"))
            .unwrap()
            .1;
        assert_eq!(
            field(&rows, &f, "crc32c"),
            crc32c::crc32c(&f[..crc_at]).to_le_bytes()
        );
        assert_eq!(field(&rows, &f, "magic"), SST_MAGIC.to_le_bytes());
        assert_eq!(field(&rows, &f, "magic"), b"STRATSST");
        assert_eq!(
            Footer::decode(&f, 9, 0x9999).unwrap(),
            footer,
            "the decoder reads it back"
        );
    }
}

#[test]
fn item_header_matches_spec_section_16_1() {
    let t = table("16.1", &["offset", "size", "field"]);
    let mut report = Report::new("§16.1 item header");
    let rows = check_layout(&mut report, &t, &ITEM_HEADER_LAYOUT, ITEM_HEADER_LEN);
    report.check(
        declared(&rows, "version") == Some(u64::from(ITEM_VERSION)),
        format!("the item version is {ITEM_VERSION} in the code"),
    );

    let flags = table("16.1", &["bit", "flag"]);
    let mut spec_mask = 0u8;
    for row in &flags.rows {
        let Some(bit) = number(&mut report, row, 0) else {
            continue;
        };
        let name = cell(row, 1);
        let mask = u32::try_from(bit)
            .ok()
            .and_then(|b| 1u8.checked_shl(b))
            .unwrap_or(0);
        spec_mask |= mask;
        match ITEM_FLAGS.iter().find(|(n, _)| names_field(name, n)) {
            None => report.row(row, "no such flag in the code"),
            Some((n, m)) if *m != mask => {
                report.row(row, format!("the code's mask for {n} is {m:#04x}"))
            }
            Some(_) => {}
        }
    }
    for (name, mask) in ITEM_FLAGS {
        if !flags.rows.iter().any(|r| names_field(cell(r, 1), name)) {
            report.code(format!("flag {name} (mask {mask:#04x})"));
        }
    }
    report.finish();

    // The encoder puts each field where SPEC says.
    let value = vec![b'a'; 1000];
    let header = ItemHeader {
        stored_at: 0x0102_0304_0506_0708,
        expires_at: Some(0x1112_1314_1516_1718),
        size: value.len() as u64,
        checksum: item_checksum(&value),
        cacheable: false,
    };
    let enc = encode_item(&value, &header, true);
    assert_eq!(field(&rows, &enc, "version"), [ITEM_VERSION]);
    let mask = |name: &str| ITEM_FLAGS.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(
        field(&rows, &enc, "flags"),
        [mask("zstd") | mask("not cacheable")]
    );
    assert_eq!(
        field(&rows, &enc, "stored_at"),
        header.stored_at.to_le_bytes()
    );
    assert_eq!(
        field(&rows, &enc, "expires_at"),
        header.expires_at.unwrap().to_le_bytes()
    );
    assert_eq!(field(&rows, &enc, "size"), header.size.to_le_bytes());
    assert_eq!(
        field(&rows, &enc, "checksum"),
        header.checksum.to_le_bytes()
    );
    assert_eq!(decode_item(&enc, 1 << 20).unwrap(), (value, header));
    // A flag bit SPEC does not list is refused.
    let flags_at = rows
        .iter()
        .find(|(n, ..)| names_field(n, "flags"))
        .unwrap()
        .1;
    for bit in 0..8 {
        if spec_mask & (1 << bit) == 0 {
            let mut bad = enc.clone();
            bad[flags_at] |= 1 << bit;
            assert!(decode_item(&bad, 1 << 20).is_err(), "flag bit {bit}");
        }
    }
}

// ---------------------------------------------------------------------------

#[test]
fn the_parser_reads_tables_tolerantly() {
    let md = "## 1. A\n\n|  a | `b` |\n|:--|--:|\n| **1** |  x\\|y  |\n|2|z|\n\ntext\n```\n| not | a table |\n```\n";
    let tables = parse_tables(md);
    assert_eq!(tables.len(), 1);
    let t = &tables[0];
    assert_eq!(t.section, "1. A");
    assert_eq!(t.header, ["a", "b"]);
    let cells: Vec<_> = t.rows.iter().map(|r| r.cells.clone()).collect();
    assert_eq!(cells, [vec!["1", "x|y"], vec!["2", "z"]]);
    assert_eq!(t.rows[0].line, 5);
    assert!(names_field("index handle: offset (u64)", "index handle"));
    assert!(names_field("MAC over bytes 0..72", "MAC"));
    assert!(!names_field("key idx", "key id"));
    assert!(!names_field("size_x", "size"));
    assert_eq!(declared_value("format version (1)"), Some(1));
    assert_eq!(declared_value("key id (0 when not encrypted)"), None);
}

/// §13.7: the catalog's lines in SPEC are the lines the encoder writes, in
/// the same order, and the magic line is the code's.
#[test]
fn backup_catalog_lines_match_spec_section_13_7() {
    use strata_format::backup::{Catalog, CatalogFile, MAGIC};
    let t = table("13.7", &["line", "fields"]);
    let spec_words: Vec<String> = t
        .rows
        .iter()
        .map(|row| {
            let first = cell(row, 0);
            if first == MAGIC {
                first.to_owned()
            } else {
                first.split(' ').next().unwrap_or_default().to_owned()
            }
        })
        .collect();
    let sample = Catalog {
        id: 1,
        created_ms: 2,
        ts: 3,
        files: vec![CatalogFile {
            name: "CURRENT".into(),
            size: 4,
            crc32c: 5,
            stored_as: "backups/000001/CURRENT".into(),
        }],
    };
    let text = String::from_utf8(sample.encode()).unwrap();
    let code_words: Vec<String> = text
        .lines()
        .map(|l| {
            if l == MAGIC {
                l.to_owned()
            } else {
                l.split(' ').next().unwrap_or_default().to_owned()
            }
        })
        .collect();
    assert_eq!(
        spec_words, code_words,
        "SPEC §13.7 catalog lines vs the encoder"
    );
}

/// §18.1: the Raft record tags in SPEC are the code's, both ways.
#[test]
fn raft_record_tags_match_spec_section_18_1() {
    use strata_format::raft::tag;
    let t = table("18.1", &["record", "tag", "fields"]);
    let mut report = Report::new("§18.1 raft records");
    let code = [
        ("log id", tag::LOG_ID),
        ("vote", tag::VOTE),
        ("blank entry", tag::ENTRY_BLANK),
        ("normal entry", tag::ENTRY_NORMAL),
        ("membership entry", tag::ENTRY_MEMBERSHIP),
        ("membership", tag::MEMBERSHIP),
        ("command", tag::COMMAND_WRITE),
        ("applied", tag::APPLIED),
        ("transaction command", tag::COMMAND_TXN),
        ("response", tag::RESPONSE),
        ("command batch", tag::COMMAND_BATCH),
        ("partial", tag::PARTIAL),
    ];
    for row in &t.rows {
        if let Some(n) = number(&mut report, row, 1) {
            let name = cell(row, 0);
            let ok = code.iter().any(|(c, v)| *c == name && u64::from(*v) == n);
            report.check(ok, format!("SPEC row {name} = {n} is not in the code"));
        }
    }
    report.check(
        t.rows.len() == code.len(),
        format!(
            "SPEC has {} rows, the code {} tags",
            t.rows.len(),
            code.len()
        ),
    );
    report.finish();
}
