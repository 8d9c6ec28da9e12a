//! Dates in CSVs.

use crate::record::Date;

/// Parses `YYYY-MM-DD`, optionally followed by ` HH:MM[:SS]` or `THH:MM[:SS]`
/// (the time is validated and dropped). The error says what is wrong.
pub fn parse_date(s: &str) -> std::result::Result<Date, String> {
    let bad = || format!("`{s}` is not a date (expected YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)");
    let (date, time) = match s.find([' ', 'T']) {
        Some(i) => (&s[..i], Some(s[i + 1..].trim())),
        None => (s, None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(m, 2) && digits(d, 2)) {
        return Err(bad());
    }
    let (year, month, day): (i32, u8, u8) = match (y.parse(), m.parse(), d.parse()) {
        (Ok(y), Ok(m), Ok(d)) => (y, m, d),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&month) {
        return Err(format!("`{s}`: month {month} is not in 1..=12"));
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if day < 1 || day > days {
        return Err(format!(
            "`{s}`: day {day} is not in 1..={days} for month {month}"
        ));
    }
    if let Some(t) = time {
        let tp: Vec<&str> = t.split(':').collect();
        let limits = [23u32, 59, 60];
        let ok = (tp.len() == 2 || tp.len() == 3)
            && tp.iter().zip(limits).all(|(p, lim)| {
                digits(p, 2) && p.parse::<u32>().map(|v| v <= lim).unwrap_or(false)
            });
        if !ok {
            return Err(bad());
        }
    }
    Ok(Date { year, month, day })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let d = |y, m, dd| Date {
            year: y,
            month: m,
            day: dd,
        };
        assert_eq!(parse_date("2020-02-29"), Ok(d(2020, 2, 29)));
        assert_eq!(parse_date("2019-12-31 23:59:59"), Ok(d(2019, 12, 31)));
        assert_eq!(parse_date("2019-12-31T08:00"), Ok(d(2019, 12, 31)));
        for bad in [
            "2019-02-29",
            "2019-13-01",
            "2019-1-01",
            "20190101",
            "2019-01-01 25:00:00",
            "yesterday",
            "2019-01-00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }
}
