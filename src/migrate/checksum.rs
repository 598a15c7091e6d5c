//! The checksum recorded for each applied migration.
//!
//! FNV-1a with 64 bits, over the SQL text with a leading byte-order mark
//! removed and CRLF line endings read as LF, written as 16 lowercase hex
//! digits. The algorithm is fixed by its definition, so the value is the
//! same on every platform and with every Rust version (unlike
//! `std::collections::hash_map::DefaultHasher`, whose output may change
//! between releases). It detects edits, not tampering: two texts of the same
//! length that differ in one byte never collide, and unrelated texts collide
//! with a chance of about one in 2^64, which is all a record of applied
//! migrations needs. Normalising line endings keeps a checkout with
//! `core.autocrlf` from looking like an edited migration.

/// FNV's 64-bit offset basis.
const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV's 64-bit prime.
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The checksum of a migration's SQL, as stored in the migrations table.
pub(crate) fn checksum(sql: &str) -> String {
    let text = sql.strip_prefix('\u{feff}').unwrap_or(sql).as_bytes();
    let normalized = text
        .iter()
        .enumerate()
        .filter(|&(i, &byte)| !(byte == b'\r' && text.get(i + 1) == Some(&b'\n')))
        .map(|(_, &byte)| byte);
    format!("{:016x}", fnv1a_64(normalized))
}

/// FNV-1a with 64 bits.
pub(crate) fn fnv1a_64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// FNV-1a with 32 bits: the PostgreSQL advisory lock's key for a table name.
pub(crate) fn fnv1a_32(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash: u32, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::{checksum, fnv1a_32};

    #[test]
    fn lock_keys_are_fnv1a_32() {
        assert_eq!(fnv1a_32(""), 0x811c_9dc5);
        assert_eq!(fnv1a_32("a"), 0xe40c_292c);
        assert_eq!(fnv1a_32("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn matches_the_published_fnv1a_64_values() {
        assert_eq!(checksum(""), "cbf29ce484222325");
        assert_eq!(checksum("a"), "af63dc4c8601ec8c");
        assert_eq!(checksum("foobar"), "85944171f73967e8");
    }

    #[test]
    fn ignores_line_endings_and_a_byte_order_mark() {
        let lf = "CREATE TABLE t (x INTEGER);\nINSERT INTO t VALUES (1);\n";
        let crlf = "CREATE TABLE t (x INTEGER);\r\nINSERT INTO t VALUES (1);\r\n";
        assert_eq!(checksum(lf), checksum(crlf));
        assert_eq!(checksum(lf), checksum(&format!("\u{feff}{lf}")));
        // A lone CR is content, not a line ending.
        assert_ne!(checksum("a\rb"), checksum("ab"));
    }

    #[test]
    fn changes_with_any_edit() {
        assert_ne!(checksum("SELECT 1"), checksum("SELECT 2"));
        assert_ne!(checksum("SELECT 1"), checksum("SELECT 1 "));
    }
}
