//! DynamoDB numbers: exact decimals with up to 38 significant digits.
//!
//! DynamoDB stores numbers as decimal text, not as floating point, and compares them
//! numerically: `"1"`, `"1.0"` and `"10E-1"` are the same number. [`Number`] keeps a
//! normalized form (sign, significant digits, decimal exponent), so derived equality and
//! hashing agree with numeric equality, and every number has exactly one canonical text
//! ([`Display`](std::fmt::Display)) and one order-preserving byte encoding
//! ([`Number::order_preserving_bytes`]) for storage keys.
//!
//! Limits are DynamoDB's: at most 38 significant digits (leading and trailing zeros are not
//! counted) and a magnitude of zero or between `1E-130` and
//! `9.9999999999999999999999999999999999999E+125`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use bigdecimal::num_bigint::{BigInt, Sign};
use bigdecimal::BigDecimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most significant digits a number may have.
pub const MAX_SIGNIFICANT_DIGITS: usize = 38;

/// Largest decimal exponent `e` of the normalized form `0.d1d2... × 10^e`:
/// magnitudes stay below `1E+126`.
const MAX_EXP: i64 = 126;
/// Smallest decimal exponent of the normalized form: magnitudes stay at or above `1E-130`.
const MIN_EXP: i64 = -129;

/// Canonical text longer than this (sign excluded) switches to scientific notation.
const MAX_PLAIN_LEN: usize = 45;

/// Sign class byte of negative numbers in [`Number::order_preserving_bytes`].
const CLASS_NEGATIVE: u8 = 0x01;
/// Sign class byte of zero: between the negatives and the positives.
const CLASS_ZERO: u8 = 0x02;
/// Sign class byte of positive numbers.
const CLASS_POSITIVE: u8 = 0x03;

/// Why a text or a decimal is not a valid DynamoDB number. The messages follow DynamoDB's,
/// so that clients see the errors they know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// The text is not a decimal number (empty, whitespace, `NaN`, hex, two dots, ...).
    #[error("Invalid number: '{0}'")]
    Invalid(String),
    /// More than 38 significant digits.
    #[error("Attempting to store more than 38 significant digits in a Number")]
    TooManyDigits,
    /// Magnitude of `1E+126` or more.
    #[error(
        "Number overflow. Attempting to store a number with magnitude larger than supported range"
    )]
    Overflow,
    /// Non-zero magnitude below `1E-130`.
    #[error(
        "Number underflow. Attempting to store a number with magnitude smaller than supported range"
    )]
    Underflow,
}

/// An exact DynamoDB number, normalized so that equal numbers are equal values.
///
/// The value is `(-1)^negative × 0.d1d2...dn × 10^exp` with `d1 != 0` and `dn != 0`; zero has
/// no digits, exponent 0 and is never negative. Construct it with [`Number::parse`] (or
/// [`FromStr`]), [`Number::from_bigdecimal`] or `From<i64>`/`From<u64>`; every constructor
/// enforces DynamoDB's limits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Number {
    /// Below zero (never set for zero).
    negative: bool,
    /// Significant digits, each 0..=9, without leading or trailing zeros.
    digits: Vec<u8>,
    /// Decimal exponent of the normalized form `0.digits × 10^exp`.
    exp: i64,
}

impl Number {
    /// Parses DynamoDB number text: an optional sign, digits with an optional decimal point
    /// (at least one digit overall), and an optional exponent (`e`/`E`, optionally signed).
    /// No whitespace, `NaN`, `Infinity` or hex; limits as in the module documentation.
    pub fn parse(s: &str) -> Result<Number, NumberError> {
        let invalid = || NumberError::Invalid(s.to_owned());
        let bytes = s.as_bytes();
        let mut i = 0;
        let negative = match bytes.first() {
            Some(b'-') => {
                i = 1;
                true
            }
            Some(b'+') => {
                i = 1;
                false
            }
            _ => false,
        };
        let mut digits = Vec::new();
        let mut point_at = None;
        while let Some(&c) = bytes.get(i) {
            match c {
                b'0'..=b'9' => digits.push(c - b'0'),
                b'.' if point_at.is_none() => point_at = Some(digits.len()),
                _ => break,
            }
            i += 1;
        }
        if digits.is_empty() {
            return Err(invalid());
        }
        let mut exp10: i64 = 0;
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            i += 1;
            let exp_negative = match bytes.get(i) {
                Some(b'-') => {
                    i += 1;
                    true
                }
                Some(b'+') => {
                    i += 1;
                    false
                }
                _ => false,
            };
            let start = i;
            while let Some(&c) = bytes.get(i) {
                if !c.is_ascii_digit() {
                    break;
                }
                // Saturate: any exponent this large is out of range anyway (or the mantissa
                // is zero), and saturating keeps the arithmetic below overflow-free.
                exp10 = (exp10 * 10 + i64::from(c - b'0')).min(1_000_000_000_000);
                i += 1;
            }
            if i == start {
                return Err(invalid());
            }
            if exp_negative {
                exp10 = -exp10;
            }
        }
        if i != bytes.len() {
            return Err(invalid());
        }
        let int_len = point_at.unwrap_or(digits.len()) as i64;
        Number::normalize(negative, digits, int_len + exp10)
    }

    /// Builds a number from `(-1)^negative × 0.digits × 10^exp`, stripping leading and
    /// trailing zeros, then checks the digit count and the range.
    fn normalize(negative: bool, mut digits: Vec<u8>, exp: i64) -> Result<Number, NumberError> {
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        let trailing = digits[leading..]
            .iter()
            .rev()
            .take_while(|&&d| d == 0)
            .count();
        digits.truncate(digits.len() - trailing);
        digits.drain(..leading);
        if digits.is_empty() {
            return Ok(Number::zero());
        }
        if digits.len() > MAX_SIGNIFICANT_DIGITS {
            return Err(NumberError::TooManyDigits);
        }
        let exp = exp - leading as i64;
        if exp > MAX_EXP {
            return Err(NumberError::Overflow);
        }
        if exp < MIN_EXP {
            return Err(NumberError::Underflow);
        }
        Ok(Number {
            negative,
            digits,
            exp,
        })
    }

    /// The number zero (convenient for defaults and ADD arithmetic).
    pub fn zero() -> Number {
        Number {
            negative: false,
            digits: Vec::new(),
            exp: 0,
        }
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Whether this is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// Count of significant digits (leading and trailing zeros excluded; 0 for zero), which
    /// is what DynamoDB's size accounting of numbers is based on.
    pub fn significant_digits(&self) -> usize {
        self.digits.len()
    }

    /// The exact value as a [`BigDecimal`], for arithmetic (e.g. UpdateItem's ADD).
    pub fn to_bigdecimal(&self) -> BigDecimal {
        let mut int = BigInt::from(0u8);
        for &d in &self.digits {
            int = int * 10u8 + d;
        }
        if self.negative {
            int = -int;
        }
        // value = int × 10^(exp - n), and BigDecimal's scale is the negated power of ten.
        BigDecimal::new(int, self.digits.len() as i64 - self.exp)
    }

    /// Converts an arithmetic result back, applying the same limits as [`Number::parse`].
    pub fn from_bigdecimal(value: &BigDecimal) -> Result<Number, NumberError> {
        let (int, scale) = value.as_bigint_and_exponent();
        let negative = int.sign() == Sign::Minus;
        let text = int.magnitude().to_str_radix(10);
        let digits: Vec<u8> = text.bytes().map(|c| c - b'0').collect();
        let exp = (digits.len() as i64).saturating_sub(scale);
        Number::normalize(negative, digits, exp)
    }

    /// A byte string whose bytewise order is this number's numeric order, identical for
    /// equal numbers: the storage engine sorts numeric sort keys with it.
    ///
    /// Layout: a sign class byte (negative `0x01` < zero `0x02` < positive `0x03`). A
    /// positive number follows with one exponent byte (`exp + 129`, so a larger magnitude
    /// sorts later) and one byte per significant digit (`d + 1`, so a shorter digit string
    /// that is a prefix of a longer one sorts first, as its value is smaller). A negative
    /// number follows with the bitwise complement of its magnitude's exponent byte, digit
    /// bytes and a terminating `0x00` (complemented to `0xFF`), which reverses the order
    /// and keeps `-1.5 > -1.55`. Encodings are compared whole, so a number must be the last
    /// component of a composite key.
    pub fn order_preserving_bytes(&self) -> Vec<u8> {
        if self.is_zero() {
            return vec![CLASS_ZERO];
        }
        // The exponent range -129..=126 maps onto 0..=255 exactly.
        let exp_byte = (self.exp - MIN_EXP) as u8;
        let mut out = Vec::with_capacity(self.digits.len() + 3);
        if self.negative {
            out.push(CLASS_NEGATIVE);
            out.push(!exp_byte);
            out.extend(self.digits.iter().map(|&d| !(d + 1)));
            out.push(!0u8);
        } else {
            out.push(CLASS_POSITIVE);
            out.push(exp_byte);
            out.extend(self.digits.iter().map(|&d| d + 1));
        }
        out
    }

    /// Compares magnitudes (absolute values) of two non-zero numbers.
    fn cmp_magnitude(&self, other: &Number) -> Ordering {
        // Digits have no trailing zeros, so a proper prefix is the smaller value.
        self.exp
            .cmp(&other.exp)
            .then_with(|| self.digits.cmp(&other.digits))
    }

    /// Rank of the sign: negative < zero < positive.
    fn sign_rank(&self) -> u8 {
        match (self.is_zero(), self.negative) {
            (true, _) => 1,
            (false, true) => 0,
            (false, false) => 2,
        }
    }

    /// Appends the characters of `digits`.
    fn push_digits(out: &mut String, digits: &[u8]) {
        out.extend(digits.iter().map(|&d| char::from(b'0' + d)));
    }

    /// Plain decimal text of the magnitude (no sign, no exponent).
    fn plain_magnitude(&self) -> String {
        let n = self.digits.len() as i64;
        let mut out = String::new();
        if self.exp >= n {
            Self::push_digits(&mut out, &self.digits);
            out.push_str(&"0".repeat((self.exp - n) as usize));
        } else if self.exp > 0 {
            let (int, frac) = self.digits.split_at(self.exp as usize);
            Self::push_digits(&mut out, int);
            out.push('.');
            Self::push_digits(&mut out, frac);
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-self.exp) as usize));
            Self::push_digits(&mut out, &self.digits);
        }
        out
    }

    /// Length of [`Number::plain_magnitude`] without building it.
    fn plain_len(&self) -> usize {
        let n = self.digits.len() as i64;
        let len = if self.exp >= n {
            self.exp
        } else if self.exp > 0 {
            n + 1
        } else {
            2 - self.exp + n
        };
        len as usize
    }

    /// Scientific text of the magnitude: `d[.ddd]E±x`.
    fn scientific_magnitude(&self) -> String {
        let mut out = String::new();
        Self::push_digits(&mut out, &self.digits[..1]);
        if self.digits.len() > 1 {
            out.push('.');
            Self::push_digits(&mut out, &self.digits[1..]);
        }
        let e = self.exp - 1;
        out.push('E');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&e.unsigned_abs().to_string());
        out
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Numeric order.
impl Ord for Number {
    fn cmp(&self, other: &Self) -> Ordering {
        let by_sign = self.sign_rank().cmp(&other.sign_rank());
        if by_sign != Ordering::Equal || self.is_zero() {
            return by_sign;
        }
        let by_magnitude = self.cmp_magnitude(other);
        if self.negative {
            by_magnitude.reverse()
        } else {
            by_magnitude
        }
    }
}

/// Canonical text: plain decimal without superfluous zeros when that is short, otherwise
/// scientific notation such as `1.5E+100` or `-1E-130`. It parses back to the same number.
impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        if self.negative {
            f.write_str("-")?;
        }
        if self.plain_len() <= MAX_PLAIN_LEN {
            f.write_str(&self.plain_magnitude())
        } else {
            f.write_str(&self.scientific_magnitude())
        }
    }
}

/// Shows the canonical text, which is what a reader wants to see.
impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number({self})")
    }
}

/// Same as [`Number::parse`].
impl FromStr for Number {
    type Err = NumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Number::parse(s)
    }
}

/// Every `i64` fits DynamoDB's limits (at most 19 digits).
impl From<i64> for Number {
    fn from(v: i64) -> Self {
        let digits = v
            .unsigned_abs()
            .to_string()
            .bytes()
            .map(|c| c - b'0')
            .collect::<Vec<_>>();
        let exp = digits.len() as i64;
        Number::normalize(v < 0, digits, exp).expect("an i64 is within DynamoDB's number limits")
    }
}

/// Every `u64` fits DynamoDB's limits (at most 20 digits).
impl From<u64> for Number {
    fn from(v: u64) -> Self {
        let digits = v.to_string().bytes().map(|c| c - b'0').collect::<Vec<_>>();
        let exp = digits.len() as i64;
        Number::normalize(false, digits, exp).expect("a u64 is within DynamoDB's number limits")
    }
}

/// Serialized as the canonical text, so stored and transmitted forms are stable.
impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Deserialized from text, validated like [`Number::parse`].
impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Number::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    const MAX: &str = "9.9999999999999999999999999999999999999E+125";

    #[test]
    fn accepts_dynamodb_syntax() {
        for s in [
            "0",
            "-0",
            "+0",
            "1",
            "+1",
            "-1",
            "1.5",
            ".5",
            "5.",
            "-.5",
            "1e3",
            "1E3",
            "1e+3",
            "1e-3",
            "007",
            "0.000",
            "1.2300",
            "123456789012345678901234567890.12345678",
            "0e999999999999999",
            "1E-130",
            MAX,
            "-1E-130",
        ] {
            n(s);
        }
    }

    #[test]
    fn rejects_bad_syntax() {
        for s in [
            "",
            " ",
            " 1",
            "1 ",
            "+",
            "-",
            ".",
            "-.",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "NaN",
            "nan",
            "Infinity",
            "-Infinity",
            "inf",
            "0x10",
            "1_000",
            "1,5",
            "--1",
            "+-1",
            "1e1.5",
            "1e5e5",
            "١",
            "1\n",
            "1ee2",
        ] {
            let err = Number::parse(s).unwrap_err();
            assert_eq!(err, NumberError::Invalid(s.to_owned()), "{s:?}");
            assert_eq!(err.to_string(), format!("Invalid number: '{s}'"));
        }
    }

    #[test]
    fn counts_significant_digits() {
        let d38 = "12345678901234567890123456789012345678";
        assert_eq!(n(d38).significant_digits(), 38);
        let d39 = format!("{d38}9");
        let err = Number::parse(&d39).unwrap_err();
        assert_eq!(err, NumberError::TooManyDigits);
        assert_eq!(
            err.to_string(),
            "Attempting to store more than 38 significant digits in a Number"
        );
        // Leading and trailing zeros do not count.
        n(&format!("000{d38}000"));
        n(&format!("0.000{d38}00000"));
        assert_eq!(n("100").significant_digits(), 1);
        assert_eq!(n("0.00100").significant_digits(), 1);
        assert_eq!(n("0").significant_digits(), 0);
        assert_eq!(
            Number::parse(&format!("-0.{d39}")).unwrap_err(),
            NumberError::TooManyDigits
        );
    }

    #[test]
    fn enforces_range() {
        n("1E-130");
        n("-1E-130");
        n("10E-131");
        n(MAX);
        n("1E+125");
        n("0E+1000");
        n("0.0E-1000");
        let over = Number::parse("1E+126").unwrap_err();
        assert_eq!(over, NumberError::Overflow);
        assert!(over.to_string().starts_with("Number overflow."));
        assert_eq!(Number::parse("-1E+126").unwrap_err(), NumberError::Overflow);
        assert_eq!(
            Number::parse("0.1E+127").unwrap_err(),
            NumberError::Overflow
        );
        assert_eq!(
            Number::parse("1E+99999999999999999999").unwrap_err(),
            NumberError::Overflow
        );
        let under = Number::parse("1E-131").unwrap_err();
        assert_eq!(under, NumberError::Underflow);
        assert!(under.to_string().starts_with("Number underflow."));
        assert_eq!(
            Number::parse("9.9E-131").unwrap_err(),
            NumberError::Underflow
        );
        assert_eq!(
            Number::parse("-1E-99999999999999999999").unwrap_err(),
            NumberError::Underflow
        );
    }

    #[test]
    fn equal_numbers_are_equal() {
        use std::collections::hash_map::DefaultHasher;
        use std::hash::{Hash, Hasher};
        let hash = |x: &Number| {
            let mut h = DefaultHasher::new();
            x.hash(&mut h);
            h.finish()
        };
        for group in [
            &["1", "1.0", "10E-1", "+1", "0.1e1", "001.000", "100e-2"][..],
            &["0", "-0", "+0", "0.0", "0e10", "-0.000E-5", ".0"][..],
            &["-1.5", "-15e-1", "-0.15E1", "-1.50"][..],
            &["1E-130", "0.1E-129", "10E-131"][..],
        ] {
            let first = n(group[0]);
            for s in group {
                let x = n(s);
                assert_eq!(x, first, "{s}");
                assert_eq!(x.cmp(&first), Ordering::Equal);
                assert_eq!(x.to_string(), first.to_string());
                assert_eq!(hash(&x), hash(&first));
                assert_eq!(x.order_preserving_bytes(), first.order_preserving_bytes());
            }
        }
    }

    #[test]
    fn canonical_text() {
        for (input, canon) in [
            ("0", "0"),
            ("-0", "0"),
            ("1.0", "1"),
            ("+1.50", "1.5"),
            ("-007.0100", "-7.01"),
            ("1e3", "1000"),
            (".5", "0.5"),
            ("5.", "5"),
            ("1.5E-3", "0.0015"),
            ("-1E-5", "-0.00001"),
            ("123.456e1", "1234.56"),
            ("1E+44", "100000000000000000000000000000000000000000000"),
            ("1E+45", "1E+45"),
            ("1.5E+100", "1.5E+100"),
            ("-1.5e100", "-1.5E+100"),
            ("1E-130", "1E-130"),
            ("1E-43", "0.0000000000000000000000000000000000000000001"),
            ("1E-44", "1E-44"),
            ("12.5E-44", "1.25E-43"),
            (MAX, MAX),
        ] {
            let x = n(input);
            assert_eq!(x.to_string(), canon, "{input}");
            assert_eq!(n(canon), x, "{canon} parses back");
            assert_eq!(canon.parse::<Number>().unwrap(), x);
            assert_eq!(format!("{x:?}"), format!("Number({canon})"));
        }
    }

    #[test]
    fn bigdecimal_round_trip() {
        for s in [
            "0",
            "1",
            "-1",
            "1.5",
            "-0.001",
            "1E-130",
            MAX,
            "-123456789.987654321",
            "1E+100",
        ] {
            let x = n(s);
            let bd = x.to_bigdecimal();
            assert_eq!(bd, s.parse::<BigDecimal>().unwrap(), "{s}");
            assert_eq!(Number::from_bigdecimal(&bd).unwrap(), x, "{s}");
        }
        let sum = n("0.1").to_bigdecimal() + n("0.2").to_bigdecimal();
        assert_eq!(Number::from_bigdecimal(&sum).unwrap().to_string(), "0.3");
        let zero = n("1.5").to_bigdecimal() - n("1.50").to_bigdecimal();
        assert_eq!(Number::from_bigdecimal(&zero).unwrap(), Number::zero());
        let big = n(MAX).to_bigdecimal() + n("1E+88").to_bigdecimal();
        assert_eq!(
            Number::from_bigdecimal(&big).unwrap_err(),
            NumberError::Overflow
        );
        let long = n("1E+20").to_bigdecimal() + n("1E-20").to_bigdecimal();
        assert_eq!(
            Number::from_bigdecimal(&long).unwrap_err(),
            NumberError::TooManyDigits
        );
        let tiny = n("1E-130").to_bigdecimal() / BigDecimal::from(10);
        assert_eq!(
            Number::from_bigdecimal(&tiny).unwrap_err(),
            NumberError::Underflow
        );
    }

    #[test]
    fn from_integers() {
        assert_eq!(Number::from(0i64), Number::zero());
        assert_eq!(Number::from(-120i64), n("-1.2e2"));
        assert_eq!(Number::from(i64::MIN).to_string(), i64::MIN.to_string());
        assert_eq!(Number::from(u64::MAX).to_string(), u64::MAX.to_string());
        assert!(Number::from(-3i64).is_negative());
        assert!(!Number::from(0i64).is_negative());
    }

    #[test]
    fn serde_as_canonical_text() {
        let x = n("10E-1");
        assert_eq!(serde_json::to_string(&x).unwrap(), "\"1\"");
        assert_eq!(
            serde_json::from_str::<Number>("\"1.50\"").unwrap(),
            n("1.5")
        );
        assert!(serde_json::from_str::<Number>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Number>("\"1E+200\"").is_err());
        assert!(serde_json::from_str::<Number>("1").is_err());
    }

    /// Random numbers spread over the whole range, with clusters that share exponents and
    /// digit prefixes so that trailing-digit and prefix cases come up often.
    fn random_numbers(rng: &mut StdRng, count: usize) -> Vec<Number> {
        let mut out = Vec::with_capacity(count);
        while out.len() < count {
            let len = if rng.gen_bool(0.5) {
                rng.gen_range(1..=4)
            } else {
                rng.gen_range(1..=38)
            };
            let mut digits: String = (0..len)
                .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
                .collect();
            if rng.gen_bool(0.3) {
                // Share a prefix with other numbers: "15", "155", "1505", ...
                digits = format!("15{}", &digits[..len.min(36)]);
            }
            let exp: i64 = if rng.gen_bool(0.5) {
                rng.gen_range(-3..=3)
            } else {
                rng.gen_range(-135..=130)
            };
            let sign = if rng.gen_bool(0.5) { "-" } else { "" };
            if let Ok(x) = Number::parse(&format!("{sign}0.{digits}E{exp}")) {
                out.push(x);
            }
        }
        out
    }

    fn edge_numbers() -> Vec<Number> {
        let mut v: Vec<Number> = [
            "0",
            "-0",
            "1E-130",
            "-1E-130",
            "1.1E-130",
            "-1.1E-130",
            MAX,
            "1",
            "-1",
            "1.5",
            "1.55",
            "1.505",
            "-1.5",
            "-1.55",
            "-1.505",
            "2",
            "-2",
            "10",
            "-10",
            "9",
            "-9",
            "0.9",
            "0.99",
            "1.0000000000000000000000000000000000001",
            "0.1",
            "100",
            "99999999999999999999999999999999999999",
            "-99999999999999999999999999999999999999",
            "1E+125",
            "-1E+125",
            "9E+125",
            "-9E+125",
        ]
        .iter()
        .filter_map(|s| Number::parse(s).ok())
        .collect();
        v.push(n(&format!("-{MAX}")));
        v
    }

    #[test]
    fn order_and_bytes_match_numeric_order() {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let mut nums = random_numbers(&mut rng, 3000);
        nums.extend(edge_numbers());
        let decimals: Vec<BigDecimal> = nums.iter().map(Number::to_bigdecimal).collect();
        let bytes: Vec<Vec<u8>> = nums.iter().map(Number::order_preserving_bytes).collect();
        for i in 0..nums.len() {
            for j in (0..nums.len())
                .step_by(7)
                .chain(i.saturating_sub(3)..(i + 3).min(nums.len()))
            {
                let want = decimals[i].cmp(&decimals[j]);
                assert_eq!(nums[i].cmp(&nums[j]), want, "{} vs {}", nums[i], nums[j]);
                assert_eq!(
                    bytes[i].cmp(&bytes[j]),
                    want,
                    "bytes of {} vs {}",
                    nums[i],
                    nums[j]
                );
                assert_eq!(nums[i] == nums[j], want == Ordering::Equal);
            }
        }
        // Sorting three ways gives the same sequence.
        let mut by_decimal: Vec<usize> = (0..nums.len()).collect();
        by_decimal.sort_by(|&a, &b| decimals[a].cmp(&decimals[b]));
        let mut by_bytes: Vec<usize> = (0..nums.len()).collect();
        by_bytes.sort_by(|&a, &b| bytes[a].cmp(&bytes[b]));
        let mut by_number: Vec<usize> = (0..nums.len()).collect();
        by_number.sort_by(|&a, &b| nums[a].cmp(&nums[b]));
        let d: Vec<&BigDecimal> = by_decimal.iter().map(|&i| &decimals[i]).collect();
        let b: Vec<&BigDecimal> = by_bytes.iter().map(|&i| &decimals[i]).collect();
        let x: Vec<&BigDecimal> = by_number.iter().map(|&i| &decimals[i]).collect();
        assert_eq!(d, b);
        assert_eq!(d, x);
    }

    #[test]
    fn byte_encoding_edges() {
        let enc = |s: &str| n(s).order_preserving_bytes();
        assert_eq!(enc("0"), enc("-0"));
        assert!(enc("-1E-130") < enc("0") && enc("0") < enc("1E-130"));
        assert!(enc("-1.5") > enc("-1.55"));
        assert!(enc("-1.5") < enc("-1.45"));
        assert!(enc("1.5") < enc("1.55") && enc("1.55") < enc("1.6"));
        assert!(enc(&format!("-{MAX}")) < enc("-1E+125"));
        assert!(enc("1E+125") < enc(MAX));
        assert!(enc("99") < enc("100") && enc("-100") < enc("-99"));
        assert_eq!(enc("1E-130")[1], 0);
        assert_eq!(enc(MAX)[1], 255);
        assert!(enc(MAX).len() <= 40);
        for s in ["1", "-1", "0.5", MAX] {
            assert_eq!(
                Number::parse(&n(s).to_string())
                    .unwrap()
                    .order_preserving_bytes(),
                enc(s)
            );
        }
    }

    #[test]
    fn text_round_trips_for_random_numbers() {
        let mut rng = StdRng::seed_from_u64(42);
        for x in random_numbers(&mut rng, 2000) {
            let text = x.to_string();
            assert_eq!(n(&text), x, "{text}");
            assert_eq!(Number::from_bigdecimal(&x.to_bigdecimal()).unwrap(), x);
            let bd: BigDecimal = text.parse().unwrap();
            assert_eq!(bd, x.to_bigdecimal());
        }
    }
}
