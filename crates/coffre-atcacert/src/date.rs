//! Dates: the compressed-certificate encoding and the X.509 text forms.

use crate::Error;

/// A UTC date and time, second precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    /// Year, e.g. 2026.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–59.
    pub second: u8,
}

/// How a certificate writes a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateFormat {
    /// `YYMMDDhhmmssZ`, years 1950–2049 (X.509 UTCTime, 13 bytes).
    Rfc5280Utc,
    /// `YYYYMMDDhhmmssZ` (X.509 GeneralizedTime, 15 bytes).
    Rfc5280Gen,
}

impl DateFormat {
    /// Encoded size in bytes.
    pub const fn size(self) -> usize {
        match self {
            DateFormat::Rfc5280Utc => 13,
            DateFormat::Rfc5280Gen => 15,
        }
    }

    /// The largest date of the format: what an expire-years value of 0
    /// ("no expiration") becomes (`atcacert_date_get_max_date`).
    pub const fn max_date(self) -> Date {
        let year = match self {
            DateFormat::Rfc5280Utc => 2049,
            DateFormat::Rfc5280Gen => 9999,
        };
        Date {
            year,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 59,
        }
    }
}

impl Date {
    /// A date at the top of an hour.
    pub const fn ymdh(year: u16, month: u8, day: u8, hour: u8) -> Date {
        Date {
            year,
            month,
            day,
            hour,
            minute: 0,
            second: 0,
        }
    }

    /// The date of a Unix time (seconds since 1970-01-01T00:00:00Z).
    pub fn from_unix(secs: u64) -> Date {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Civil-from-days (H. Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
        Date {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: ((rem % 3600) / 60) as u8,
            second: (rem % 60) as u8,
        }
    }

    fn valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
    }

    /// The date as the format writes it.
    pub fn encode(&self, format: DateFormat) -> Result<alloc::vec::Vec<u8>, Error> {
        use alloc::format;
        if !self.valid() {
            return Err(Error::InvalidDate);
        }
        let (y, m, d, h, mi, s) = (
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        );
        let text = match format {
            DateFormat::Rfc5280Utc => {
                let yy = match y {
                    1950..=1999 => y - 1900,
                    2000..=2049 => y - 2000,
                    _ => return Err(Error::InvalidDate),
                };
                format!("{yy:02}{m:02}{d:02}{h:02}{mi:02}{s:02}Z")
            }
            DateFormat::Rfc5280Gen => {
                if y > 9999 {
                    return Err(Error::InvalidDate);
                }
                format!("{y:04}{m:02}{d:02}{h:02}{mi:02}{s:02}Z")
            }
        };
        Ok(text.into_bytes())
    }
}

/// Decode bytes 64–66 (and 71 for format versions 1 and 2) of a compressed
/// certificate into the issue date and the expire-years count
/// (`atcacert_date_dec_compcert_ext`). Minutes and seconds are zero.
pub(crate) fn decode_compressed(comp: &[u8; 72]) -> Result<(Date, u8), Error> {
    let format = comp[70] & 0x0F;
    let (year_off, expire_years) = if format == 1 || format == 2 {
        (
            (((comp[71] & 0xC0) >> 1) & 0x60) | ((comp[64] >> 3) & 0x1F),
            (comp[66] & 0x1F) | ((comp[71] & 0x30) << 1),
        )
    } else {
        ((comp[64] & 0xF8) >> 3, comp[66] & 0x1F)
    };
    let month = ((comp[64] & 0x07) << 1) | ((comp[65] & 0x80) >> 7);
    let day = (comp[65] & 0x7C) >> 2;
    let hour = ((comp[65] & 0x03) << 3) | ((comp[66] & 0xE0) >> 5);
    let date = Date::ymdh(2000 + u16::from(year_off), month, day, hour);
    if !date.valid() {
        return Err(Error::InvalidDate);
    }
    Ok((date, expire_years))
}

/// Encode an issue date (hour precision) and expire years into bytes
/// 64–66 and the upper half of byte 71 (`atcacert_date_enc_compcert_ext`).
/// `format` is the compressed format version (byte 70, low nibble).
pub(crate) fn encode_compressed(
    issue: &Date,
    expire_years: u8,
    format: u8,
    comp: &mut [u8; 72],
) -> Result<(), Error> {
    let (max_year, max_expire) = if format == 0 { (2031, 31) } else { (2127, 127) };
    if issue.year < 2000 || issue.year > max_year || expire_years > max_expire {
        return Err(Error::InvalidDate);
    }
    if !issue.valid() {
        return Err(Error::InvalidDate);
    }
    let y = (issue.year - 2000) as u8;
    let m = issue.month;
    comp[64] = ((y & 0x1F) << 3) | ((m & 0x0F) >> 1);
    comp[65] = ((m & 0x01) << 7) | ((issue.day & 0x1F) << 2) | ((issue.hour & 0x1F) >> 3);
    comp[66] = ((issue.hour & 0x07) << 5) | (expire_years & 0x1F);
    comp[71] = (comp[71] & 0x0F) | ((y & 0x60) << 1) | ((expire_years & 0x60) >> 1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_dates_match_known_calendar_days() {
        assert_eq!(Date::from_unix(0), Date::ymdh(1970, 1, 1, 0));
        // 2024-02-29T13:00:00Z
        assert_eq!(Date::from_unix(1_709_211_600), Date::ymdh(2024, 2, 29, 13));
        // 2000-03-01T00:00:00Z
        assert_eq!(Date::from_unix(951_868_800), Date::ymdh(2000, 3, 1, 0));
    }

    #[test]
    fn compressed_dates_round_trip_across_fields() {
        for (date, years, format) in [
            (Date::ymdh(2018, 11, 8, 4), 31, 0),
            (Date::ymdh(2031, 12, 31, 23), 28, 0),
            (Date::ymdh(2000, 1, 1, 0), 0, 0),
            (Date::ymdh(2099, 6, 15, 7), 100, 1),
        ] {
            let mut comp = [0u8; 72];
            comp[70] = format;
            encode_compressed(&date, years, format, &mut comp).unwrap();
            assert_eq!(decode_compressed(&comp).unwrap(), (date, years));
        }
    }

    #[test]
    fn out_of_range_dates_are_refused() {
        let mut comp = [0u8; 72];
        assert_eq!(
            encode_compressed(&Date::ymdh(2032, 1, 1, 0), 1, 0, &mut comp),
            Err(Error::InvalidDate)
        );
        // Month 0 decodes to an invalid date, not a panic.
        let comp = [0u8; 72];
        assert_eq!(decode_compressed(&comp), Err(Error::InvalidDate));
        assert_eq!(
            Date::ymdh(2050, 1, 1, 0).encode(DateFormat::Rfc5280Utc),
            Err(Error::InvalidDate)
        );
        assert_eq!(
            Date::ymdh(2026, 3, 4, 5)
                .encode(DateFormat::Rfc5280Utc)
                .unwrap(),
            b"260304050000Z"
        );
    }
}
