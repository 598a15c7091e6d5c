//! sqlaio's [`Value`] to and from the `mysql` crate's values, by column type.
//!
//! Nothing is lost silently: an unsigned value above `i64::MAX` becomes a
//! `Decimal` with the `decimal` feature and is an error without it; a zero
//! date and a `TIME` outside a day are errors with the `chrono` feature (and
//! text without it); a type nobody maps is an error naming it.

use mysql::consts::{ColumnFlags, ColumnType};
use mysql::{Column, Value as My};

use crate::error::{DecodeError, Error, Result};
use crate::value::Value;

/// The `binary` character set: bytes, not text.
const BINARY_CHARSET: u16 = 63;

/// Converts a parameter into the crate's value.
///
/// # Errors
/// [`Error::Parameter`] for a date or time MySQL cannot hold.
pub(super) fn bind(value: Value) -> Result<My> {
    Ok(match value {
        Value::Null => My::NULL,
        Value::Bool(b) => My::Int(i64::from(b)),
        Value::Integer(i) => My::Int(i),
        Value::Real(f) => My::Double(f),
        Value::Text(s) => My::Bytes(s.into_bytes()),
        Value::Blob(b) => My::Bytes(b),
        #[cfg(feature = "decimal")]
        Value::Decimal(d) => My::Bytes(d.to_string().into_bytes()),
        #[cfg(feature = "chrono")]
        Value::Timestamp(t) => datetime(t)?,
        #[cfg(feature = "chrono")]
        Value::TimestampTz(t) => datetime(t.naive_utc())?,
        #[cfg(feature = "chrono")]
        Value::Date(d) => datetime(d.and_time(chrono::NaiveTime::MIN))?,
        #[cfg(feature = "chrono")]
        Value::Time(t) => {
            use chrono::Timelike;
            My::Time(
                false,
                0,
                t.hour() as u8,
                t.minute() as u8,
                t.second() as u8,
                (t.nanosecond() % 1_000_000_000) / 1000,
            )
        }
        #[cfg(feature = "uuid")]
        Value::Uuid(u) => My::Bytes(u.hyphenated().to_string().into_bytes()),
        #[cfg(feature = "json")]
        Value::Json(j) => My::Bytes(j.to_string().into_bytes()),
    })
}

#[cfg(feature = "chrono")]
fn datetime(t: chrono::NaiveDateTime) -> Result<My> {
    use chrono::{Datelike, Timelike};
    let year = u16::try_from(t.year())
        .ok()
        .filter(|y| *y <= 9999)
        .ok_or_else(|| {
            Error::Parameter(format!(
                "{t} is outside the years 0-9999 that MySQL dates hold"
            ))
        })?;
    Ok(My::Date(
        year,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        // A leap second (nanoseconds past 1e9) has no MySQL form: its fraction is kept.
        (t.nanosecond() % 1_000_000_000) / 1000,
    ))
}

/// `true` for a column whose bytes are text (a character set other than `binary`).
fn is_text(column: &Column) -> bool {
    column.character_set() != BINARY_CHARSET
}

/// Converts a row value of `column`.
///
/// # Errors
/// A [`DecodeError`] for a value sqlaio cannot represent without loss.
pub(super) fn decode(column: &Column, value: My) -> std::result::Result<Value, DecodeError> {
    use ColumnType::*;
    Ok(match value {
        My::NULL => Value::Null,
        My::Int(i) => Value::Integer(i),
        My::UInt(u) => unsigned(u)?,
        My::Float(f) => Value::Real(f64::from(f)),
        My::Double(f) => Value::Real(f),
        My::Date(y, m, d, h, mi, s, us) => date(column.column_type(), [y, m.into(), d.into(), h.into(), mi.into(), s.into()], us)?,
        My::Time(neg, days, h, m, s, us) => time(neg, days, h, m, s, us)?,
        My::Bytes(bytes) => match column.column_type() {
            MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => decimal(bytes)?,
            MYSQL_TYPE_JSON => json(bytes)?,
            MYSQL_TYPE_BIT => {
                if bytes.len() > 8 {
                    return Err(DecodeError::new("a BIT value wider than 64 bits"));
                }
                unsigned(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))?
            }
            MYSQL_TYPE_GEOMETRY | MYSQL_TYPE_VECTOR => Value::Blob(bytes),
            MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_ENUM
            | MYSQL_TYPE_SET | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB | MYSQL_TYPE_BLOB => {
                let flags = column.flags();
                if is_text(column) || flags.intersects(ColumnFlags::ENUM_FLAG | ColumnFlags::SET_FLAG) {
                    text(bytes)
                } else {
                    Value::Blob(bytes)
                }
            }
            other => {
                return Err(DecodeError::new(format!(
                    "MySQL column type {other:?} is not supported (cast it to CHAR in SQL)"
                )))
            }
        },
    })
}

/// Text, or the bytes themselves when they are not UTF-8 (never mangled).
fn text(bytes: Vec<u8>) -> Value {
    match String::from_utf8(bytes) {
        Ok(s) => Value::Text(s),
        Err(e) => Value::Blob(e.into_bytes()),
    }
}

fn unsigned(u: u64) -> std::result::Result<Value, DecodeError> {
    if let Ok(i) = i64::try_from(u) {
        return Ok(Value::Integer(i));
    }
    #[cfg(feature = "decimal")]
    {
        Ok(Value::Decimal(rust_decimal::Decimal::from(u)))
    }
    #[cfg(not(feature = "decimal"))]
    Err(DecodeError::new(format!(
        "unsigned value {u} is above i64::MAX (enable sqlaio's \"decimal\" feature to read it, or cast it to CHAR in SQL)"
    )))
}

fn decimal(bytes: Vec<u8>) -> std::result::Result<Value, DecodeError> {
    #[cfg(feature = "decimal")]
    {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| DecodeError::new("a DECIMAL value that is not ASCII"))?;
        rust_decimal::Decimal::from_str_exact(text)
            .map(Value::Decimal)
            .map_err(|e| {
                DecodeError::new(format!(
                    "DECIMAL {text} does not fit rust_decimal's 28 digits: {e} (cast it to CHAR in SQL)"
                ))
            })
    }
    #[cfg(not(feature = "decimal"))]
    Ok(text(bytes))
}

fn json(bytes: Vec<u8>) -> std::result::Result<Value, DecodeError> {
    #[cfg(feature = "json")]
    {
        serde_json::from_slice(&bytes)
            .map(Value::Json)
            .map_err(|e| DecodeError::new(format!("invalid JSON from the server: {e}")))
    }
    #[cfg(not(feature = "json"))]
    Ok(text(bytes))
}

/// A `DATE`, `DATETIME` or `TIMESTAMP`: `[year, month, day, hour, minute, second]` and µs.
fn date(kind: ColumnType, parts: [u16; 6], micros: u32) -> std::result::Result<Value, DecodeError> {
    let [y, m, d, h, mi, s] = parts;
    let is_date = matches!(kind, ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE);
    #[cfg(feature = "chrono")]
    {
        let day = chrono::NaiveDate::from_ymd_opt(y.into(), m.into(), d.into()).ok_or_else(|| {
            DecodeError::new(format!(
                "{y:04}-{m:02}-{d:02} is not a calendar date (MySQL's zero dates have no chrono form; \
                 use NULLIF(col, '0000-00-00') or cast it to CHAR in SQL)"
            ))
        })?;
        if is_date {
            return Ok(Value::Date(day));
        }
        let time = chrono::NaiveTime::from_hms_micro_opt(h.into(), mi.into(), s.into(), micros)
            .ok_or_else(|| DecodeError::new(format!("{h:02}:{mi:02}:{s:02} is not a time of day")))?;
        Ok(Value::Timestamp(day.and_time(time)))
    }
    #[cfg(not(feature = "chrono"))]
    {
        let mut text = format!("{y:04}-{m:02}-{d:02}");
        if !is_date {
            text.push_str(&format!(" {h:02}:{mi:02}:{s:02}"));
            if micros > 0 {
                text.push_str(&format!(".{micros:06}"));
            }
        }
        Ok(Value::Text(text))
    }
}

/// A `TIME`: a duration of up to ±838 hours, read as a time of day when it is one.
fn time(negative: bool, days: u32, h: u8, m: u8, s: u8, micros: u32) -> std::result::Result<Value, DecodeError> {
    #[cfg(feature = "chrono")]
    {
        if !negative && days == 0 {
            if let Some(t) = chrono::NaiveTime::from_hms_micro_opt(h.into(), m.into(), s.into(), micros) {
                return Ok(Value::Time(t));
            }
        }
        let hours = u64::from(days) * 24 + u64::from(h);
        let sign = if negative { "-" } else { "" };
        Err(DecodeError::new(format!(
            "TIME {sign}{hours:02}:{m:02}:{s:02} is outside a day (00:00:00 to 23:59:59), so it is no \
             chrono::NaiveTime; read TIME_TO_SEC(col) or cast it to CHAR in SQL"
        )))
    }
    #[cfg(not(feature = "chrono"))]
    {
        let hours = u64::from(days) * 24 + u64::from(h);
        let sign = if negative { "-" } else { "" };
        let mut text = format!("{sign}{hours:02}:{m:02}:{s:02}");
        if micros > 0 {
            text.push_str(&format!(".{micros:06}"));
        }
        Ok(Value::Text(text))
    }
}

/// A text-protocol value (every column comes as text) in the form the binary
/// protocol gives it, so that [`decode`] reads both alike.
pub(super) fn from_text(column: &Column, value: My) -> std::result::Result<My, DecodeError> {
    use ColumnType::*;
    let My::Bytes(bytes) = value else {
        return Ok(value);
    };
    let bad = |what: &str| {
        DecodeError::new(format!(
            "{:?} is not a valid {what}",
            String::from_utf8_lossy(&bytes)
        ))
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(My::Bytes(bytes));
    };
    Ok(match column.column_type() {
        MYSQL_TYPE_TINY | MYSQL_TYPE_SHORT | MYSQL_TYPE_LONG | MYSQL_TYPE_INT24
        | MYSQL_TYPE_LONGLONG | MYSQL_TYPE_YEAR => {
            if column.flags().contains(ColumnFlags::UNSIGNED_FLAG) {
                My::UInt(text.parse().map_err(|_| bad("unsigned integer"))?)
            } else {
                My::Int(text.parse().map_err(|_| bad("integer"))?)
            }
        }
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => My::Double(text.parse().map_err(|_| bad("number"))?),
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE | MYSQL_TYPE_DATETIME | MYSQL_TYPE_TIMESTAMP => {
            parse_datetime(text).ok_or_else(|| bad("date"))?
        }
        MYSQL_TYPE_TIME => parse_time(text).ok_or_else(|| bad("time"))?,
        _ => My::Bytes(bytes),
    })
}

/// `YYYY-MM-DD[ HH:MM:SS[.ffffff]]`.
fn parse_datetime(text: &str) -> Option<My> {
    let (date, time) = text.split_once(' ').unwrap_or((text, "00:00:00"));
    let mut d = date.split('-').map(str::parse::<u16>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let My::Time(false, 0, h, mi, s, us) = parse_time(time)? else {
        return None;
    };
    Some(My::Date(y, u8::try_from(m).ok()?, u8::try_from(day).ok()?, h, mi, s, us))
}

/// `[-]H+:MM:SS[.ffffff]`.
fn parse_time(text: &str) -> Option<My> {
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut parts = whole.split(':').map(str::parse::<u32>);
    let (hours, m, s) = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?);
    let micros = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().chain(std::iter::repeat('0')).take(6).collect();
        digits.parse().ok()?
    };
    Some(My::Time(
        negative,
        hours / 24,
        u8::try_from(hours % 24).ok()?,
        u8::try_from(m).ok()?,
        u8::try_from(s).ok()?,
        micros,
    ))
}

/// An error for a column value, as the other drivers word it.
pub(super) fn decode_error(column: &Column, e: DecodeError) -> Error {
    Error::decode(&column.name_str(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_protocol_dates_and_times_parse() {
        assert_eq!(parse_datetime("2024-02-29 13:14:15.5"), Some(My::Date(2024, 2, 29, 13, 14, 15, 500_000)));
        assert_eq!(parse_datetime("0000-00-00"), Some(My::Date(0, 0, 0, 0, 0, 0, 0)));
        assert_eq!(parse_time("-838:59:59"), Some(My::Time(true, 34, 22, 59, 59, 0)));
        assert_eq!(parse_time("25:00:00.000001"), Some(My::Time(false, 1, 1, 0, 0, 1)));
        assert_eq!(parse_time("x"), None);
    }

    #[test]
    fn unsigned_above_i64_is_never_wrapped() {
        assert_eq!(unsigned(7).unwrap(), Value::Integer(7));
        let big = unsigned(u64::MAX);
        #[cfg(feature = "decimal")]
        assert_eq!(big.unwrap(), Value::Decimal(rust_decimal::Decimal::from(u64::MAX)));
        #[cfg(not(feature = "decimal"))]
        assert!(big.unwrap_err().to_string().contains("18446744073709551615"));
    }
}
