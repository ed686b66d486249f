//! A strict JSON reader that writes a canonical form of its input, for hashing.
//!
//! It never builds a tree: it streams tokens into an output buffer and only
//! reorders the members of an object whose keys are out of order, which keeps
//! a 100-byte params value well under a microsecond.
//!
//! The canonical form is only hashed, never parsed back, so it is chosen to be
//! injective and compact rather than to be JSON:
//! - whitespace is dropped;
//! - strings are decoded and re-encoded with exactly three kinds of escapes
//!   (`\"`, `\\`, and `\u00XX` for control characters);
//! - numbers become `[-]DIGITS[eEXP]` with no leading or trailing zeros in
//!   DIGITS, so equal decimal values (`1`, `1.0`, `10e-1`) are written alike;
//!   every zero is `0`;
//! - `true`, `false` and `null` become `t`, `f` and `n`;
//! - object members are written as `KEY VALUE` without separators (every token
//!   is self-delimiting), sorted by canonical key, keeping the last of
//!   duplicated keys; array elements keep their order, separated by `,`.

use crate::ParamsProblem;

use super::Scratch;

/// Bytes that end a run of plain string bytes: a quote, a backslash, or a
/// control character (which JSON forbids raw in strings).
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// serde_json's default recursion limit; deeper params are refused, not hashed.
const MAX_DEPTH: u32 = 128;

/// One object member in the output buffer: `start..key_end` is the canonical
/// key, `start..end` the whole member.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    start: usize,
    key_end: usize,
    end: usize,
}

type Fail = (usize, ParamsProblem);

/// Appends the canonical form of `input` to `scratch.out`.
pub(crate) fn canonicalize(input: &[u8], scratch: &mut Scratch) -> Result<(), Fail> {
    match std::str::from_utf8(input) {
        Ok(text) => canonicalize_str(text, scratch),
        Err(e) => Err((e.valid_up_to(), ParamsProblem::InvalidUtf8)),
    }
}

/// [`canonicalize`] for text already known to be UTF-8.
pub(crate) fn canonicalize_str(input: &str, scratch: &mut Scratch) -> Result<(), Fail> {
    let input = input.as_bytes();
    let Scratch {
        out,
        spans,
        members,
    } = scratch;
    spans.clear();
    let mut p = Parser {
        input,
        pos: 0,
        out,
        spans,
        members,
        depth: 0,
    };
    p.value()?;
    p.skip_ws();
    if p.pos != input.len() {
        return Err((p.pos, ParamsProblem::TrailingCharacters));
    }
    Ok(())
}

struct Parser<'a, 'b> {
    input: &'a [u8],
    pos: usize,
    out: &'b mut Vec<u8>,
    spans: &'b mut Vec<Span>,
    members: &'b mut Vec<u8>,
    depth: u32,
}

impl Parser<'_, '_> {
    fn fail<T>(&self, problem: ParamsProblem) -> Result<T, Fail> {
        Err((self.pos, problem))
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `byte` after optional whitespace.
    fn expect(&mut self, byte: u8) -> Result<(), Fail> {
        self.skip_ws();
        match self.peek() {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => self.fail(ParamsProblem::Syntax),
            None => self.fail(ParamsProblem::UnexpectedEnd),
        }
    }

    fn value(&mut self) -> Result<(), Fail> {
        self.skip_ws();
        match self.peek() {
            None => self.fail(ParamsProblem::UnexpectedEnd),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string(),
            Some(b't') => self.literal(b"true", b't'),
            Some(b'f') => self.literal(b"false", b'f'),
            Some(b'n') => self.literal(b"null", b'n'),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.fail(ParamsProblem::Syntax),
        }
    }

    fn enter(&mut self) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(ParamsProblem::TooDeep);
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, word: &[u8], tag: u8) -> Result<(), Fail> {
        let rest = &self.input[self.pos..];
        if rest.starts_with(word) {
            self.pos += word.len();
            self.out.push(tag);
            Ok(())
        } else if word.starts_with(rest) {
            self.pos = self.input.len();
            self.fail(ParamsProblem::UnexpectedEnd)
        } else {
            self.fail(ParamsProblem::Syntax)
        }
    }

    fn object(&mut self) -> Result<(), Fail> {
        self.enter()?;
        self.out.push(b'{');
        let base = self.spans.len();
        let members_start = self.out.len();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                match self.peek() {
                    Some(b'"') => {}
                    Some(_) => return self.fail(ParamsProblem::Syntax),
                    None => return self.fail(ParamsProblem::UnexpectedEnd),
                }
                let start = self.out.len();
                self.string()?;
                let key_end = self.out.len();
                self.expect(b':')?;
                self.value()?;
                self.spans.push(Span {
                    start,
                    key_end,
                    end: self.out.len(),
                });
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    Some(_) => return self.fail(ParamsProblem::Syntax),
                    None => return self.fail(ParamsProblem::UnexpectedEnd),
                }
            }
            self.sort_members(base, members_start);
            self.spans.truncate(base);
        }
        self.out.push(b'}');
        self.depth -= 1;
        Ok(())
    }

    /// Puts the members written since `members_start` in key order, keeping the
    /// last of any duplicated key. Objects written in order (the common case,
    /// for params built by code) are left untouched.
    fn sort_members(&mut self, base: usize, members_start: usize) {
        let out = &*self.out;
        let key = |s: &Span| &out[s.start..s.key_end];
        let spans = &mut self.spans[base..];
        if spans.windows(2).all(|w| key(&w[0]) < key(&w[1])) {
            return;
        }
        // Stable, so among equal keys the last one written stays last.
        spans.sort_by(|a, b| key(a).cmp(key(b)));
        self.members.clear();
        for (i, span) in spans.iter().enumerate() {
            let superseded = spans.get(i + 1).is_some_and(|next| key(next) == key(span));
            if !superseded {
                self.members.extend_from_slice(&out[span.start..span.end]);
            }
        }
        self.out.truncate(members_start);
        self.out.extend_from_slice(&self.members[..]);
    }

    fn array(&mut self) -> Result<(), Fail> {
        self.enter()?;
        self.out.push(b'[');
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                self.value()?;
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.out.push(b',');
                    }
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    Some(_) => return self.fail(ParamsProblem::Syntax),
                    None => return self.fail(ParamsProblem::UnexpectedEnd),
                }
            }
        }
        self.out.push(b']');
        self.depth -= 1;
        Ok(())
    }

    fn string(&mut self) -> Result<(), Fail> {
        self.pos += 1;
        self.out.push(b'"');
        loop {
            let start = self.pos;
            let rest = &self.input[start..];
            // The run ends at a quote or a backslash, found a vector at a
            // time; a control character in it ends it earlier, and is found
            // by a second pass that the compiler vectorizes (a byte-at-a-time
            // table lookup was half of a cache hit's key).
            let quote_or_backslash = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
            let run = &rest[..quote_or_backslash];
            let len = if run.iter().copied().min().is_some_and(|low| low < 0x20) {
                run.iter()
                    .position(|&b| STRING_STOP[usize::from(b)])
                    .unwrap_or(run.len())
            } else {
                run.len()
            };
            self.pos += len;
            self.out.extend_from_slice(&self.input[start..self.pos]);
            match self.peek() {
                None => return self.fail(ParamsProblem::UnexpectedEnd),
                Some(b'"') => {
                    self.pos += 1;
                    self.out.push(b'"');
                    return Ok(());
                }
                Some(b'\\') => self.escape()?,
                Some(_) => return self.fail(ParamsProblem::InvalidString),
            }
        }
    }

    fn escape(&mut self) -> Result<(), Fail> {
        self.pos += 1;
        let Some(c) = self.peek() else {
            return self.fail(ParamsProblem::UnexpectedEnd);
        };
        self.pos += 1;
        let ch = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => {
                self.pos -= 1;
                return self.fail(ParamsProblem::InvalidString);
            }
        };
        self.push_char(ch);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, Fail> {
        let Some(digits) = self.input.get(self.pos..self.pos + 4) else {
            return self.fail(ParamsProblem::UnexpectedEnd);
        };
        let mut v = 0u32;
        for &d in digits {
            let n = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return self.fail(ParamsProblem::InvalidString),
            };
            v = (v << 4) | u32::from(n);
        }
        self.pos += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, Fail> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.input.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return self.fail(ParamsProblem::LoneSurrogate);
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return self.fail(ParamsProblem::LoneSurrogate);
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return self.fail(ParamsProblem::LoneSurrogate),
            _ => first,
        };
        match char::from_u32(code) {
            Some(ch) => Ok(ch),
            None => self.fail(ParamsProblem::LoneSurrogate),
        }
    }

    fn push_char(&mut self, ch: char) {
        match ch {
            '"' => self.out.extend_from_slice(b"\\\""),
            '\\' => self.out.extend_from_slice(b"\\\\"),
            c if u32::from(c) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = u32::from(c) as usize;
                self.out.extend_from_slice(b"\\u00");
                self.out.push(HEX[n >> 4]);
                self.out.push(HEX[n & 0xf]);
            }
            c => {
                let mut buf = [0u8; 4];
                self.out
                    .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), Fail> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return self.fail(ParamsProblem::Syntax);
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            Some(_) => return self.fail(ParamsProblem::Syntax),
            None => return self.fail(ParamsProblem::UnexpectedEnd),
        }
        let int = int_start..self.pos;
        let mut frac = self.pos..self.pos;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            let start = self.pos;
            if self.digits() == 0 {
                return self.fail(self.end_or(ParamsProblem::Syntax));
            }
            frac = start..self.pos;
        }
        let mut exp: i64 = 0;
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            let exp_negative = match self.peek() {
                Some(b'-') => {
                    self.pos += 1;
                    true
                }
                Some(b'+') => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            let start = self.pos;
            if self.digits() == 0 {
                return self.fail(self.end_or(ParamsProblem::Syntax));
            }
            for &d in &self.input[start..self.pos] {
                exp = exp
                    .checked_mul(10)
                    .and_then(|e| e.checked_add(i64::from(d - b'0')))
                    .ok_or((start, ParamsProblem::NumberOutOfRange))?;
            }
            if exp_negative {
                exp = -exp;
            }
        }
        self.write_number(negative, int, frac, exp)
    }

    fn end_or(&self, problem: ParamsProblem) -> ParamsProblem {
        if self.pos >= self.input.len() {
            ParamsProblem::UnexpectedEnd
        } else {
            problem
        }
    }

    /// Writes `±M·10^E` where the decimal digits of `int` then `frac` are the
    /// mantissa and `exp - frac.len()` the exponent, normalised so that the
    /// mantissa has neither leading nor trailing zeros.
    fn write_number(
        &mut self,
        negative: bool,
        int: std::ops::Range<usize>,
        frac: std::ops::Range<usize>,
        exp: i64,
    ) -> Result<(), Fail> {
        let int = &self.input[int];
        let frac = &self.input[frac];
        let len = int.len() + frac.len();
        let digit = |i: usize| {
            if i < int.len() {
                int[i]
            } else {
                frac[i - int.len()]
            }
        };
        let Some(first) = (0..len).find(|&i| digit(i) != b'0') else {
            // Every spelling of zero, negative or not, is the same value.
            self.out.push(b'0');
            return Ok(());
        };
        let last = (0..len).rev().find(|&i| digit(i) != b'0').unwrap_or(first);
        let trailing_zeros = (len - 1 - last) as i64;
        let exp10 = exp
            .checked_sub(frac.len() as i64)
            .and_then(|e| e.checked_add(trailing_zeros))
            .ok_or((self.pos, ParamsProblem::NumberOutOfRange))?;
        if negative {
            self.out.push(b'-');
        }
        if last < int.len() {
            self.out.extend_from_slice(&int[first..=last]);
        } else if first >= int.len() {
            self.out
                .extend_from_slice(&frac[first - int.len()..=last - int.len()]);
        } else {
            self.out.extend_from_slice(&int[first..]);
            self.out.extend_from_slice(&frac[..=last - int.len()]);
        }
        if exp10 != 0 {
            self.out.push(b'e');
            push_i64(self.out, exp10);
        }
        Ok(())
    }
}

fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}
