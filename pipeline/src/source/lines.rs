//! Incremental, bounded NDJSON line splitting (HTTP streams, files, stdin).
//!
//! Input → output: byte chunks cut anywhere (mid-line, mid-`\r\n`) → complete lines, each with
//! the stream offset just after it, or an `Oversize` notice.
//!
//! Invariants:
//! - A line that fits in one chunk is handed on as a slice of that chunk: no copy. Only a line
//!   cut by a chunk boundary is copied, into one buffer that never holds more than
//!   `max_line_bytes + 1` bytes (the `+ 1` is a `\r` whose `\n` has not arrived yet).
//! - A line longer than `max_line_bytes` (terminator excluded) is reported once as
//!   [`Line::Oversize`] when it is seen to be too long, and the rest of it is discarded as it
//!   arrives, without buffering: a hostile stream cannot make the splitter grow.
//! - `\n` ends a line; one `\r` before it is stripped. Lines of only ASCII whitespace (X's
//!   `\r\n` keep-alives, blank lines in files) are not frames and are not reported at all,
//!   unless they are over the limit: those are `Oversize` like any other, since a line is
//!   judged too long before its end (and so its content) is seen.
//! - At the end of input, [`LineSplitter::finish`] hands on a last line without a terminator.

use memchr::memchr;

/// What the splitter found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line, without its terminator, and the stream offset just after it.
    Frame {
        /// The line's bytes.
        bytes: &'a [u8],
        /// Bytes of the stream up to and including this line's terminator.
        end: u64,
    },
    /// A line over the limit, dropped whole; reported once.
    Oversize,
}

/// Splits a byte stream into lines; one per stream, reused across chunks.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max_line_bytes: usize,
    buf: Vec<u8>,
    discarding: bool,
    offset: u64,
}

impl LineSplitter {
    /// A splitter handing on lines of at most `max_line_bytes` bytes.
    pub fn new(max_line_bytes: usize) -> Self {
        Self {
            max_line_bytes,
            buf: Vec::new(),
            discarding: false,
            offset: 0,
        }
    }

    /// Bytes fed so far (the stream offset of the next byte).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Forgets any partial line and restarts offsets at `offset` (a new connection, a seek).
    pub fn reset(&mut self, offset: u64) {
        self.buf.clear();
        self.discarding = false;
        self.offset = offset;
    }

    /// Feeds one chunk, calling `on` for every complete line and every oversize line in it;
    /// stops at `on`'s first error.
    pub fn feed<E>(
        &mut self,
        mut chunk: &[u8],
        on: &mut impl FnMut(Line<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while !chunk.is_empty() {
            let Some(nl) = memchr(b'\n', chunk) else {
                self.offset += chunk.len() as u64;
                if !self.discarding {
                    if self.buf.len() + chunk.len() > self.max_line_bytes.saturating_add(1) {
                        self.buf.clear();
                        self.discarding = true;
                        on(Line::Oversize)?;
                    } else {
                        self.buf.extend_from_slice(chunk);
                    }
                }
                return Ok(());
            };
            let line = &chunk[..nl];
            chunk = &chunk[nl + 1..];
            self.offset += nl as u64 + 1;
            let end = self.offset;
            if self.discarding {
                self.discarding = false;
            } else if self.buf.is_empty() {
                emit(line, end, self.max_line_bytes, on)?;
            } else if self.buf.len() + line.len() > self.max_line_bytes.saturating_add(1) {
                self.buf.clear();
                on(Line::Oversize)?;
            } else {
                self.buf.extend_from_slice(line);
                let result = emit(&self.buf, end, self.max_line_bytes, on);
                self.buf.clear();
                result?;
            }
        }
        Ok(())
    }

    /// Ends the stream: hands on a last line that had no terminator.
    pub fn finish<E>(&mut self, on: &mut impl FnMut(Line<'_>) -> Result<(), E>) -> Result<(), E> {
        self.discarding = false;
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = emit(&self.buf, self.offset, self.max_line_bytes, on);
        self.buf.clear();
        result
    }
}

fn emit<E>(
    line: &[u8],
    end: u64,
    max: usize,
    on: &mut impl FnMut(Line<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Length first: a line cut by a chunk boundary is found too long before its end is seen,
    // so a long blank line must be `Oversize` here too, whatever the chunking.
    if line.len() > max {
        return on(Line::Oversize);
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    on(Line::Frame { bytes: line, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Got {
        F(String, u64),
        Big,
    }

    fn run(max: usize, chunks: &[&[u8]]) -> Vec<Got> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut on = |l: Line<'_>| -> Result<(), ()> {
            out.push(match l {
                Line::Frame { bytes, end } => Got::F(String::from_utf8_lossy(bytes).into(), end),
                Line::Oversize => Got::Big,
            });
            Ok(())
        };
        for c in chunks {
            s.feed(c, &mut on).expect("no error");
        }
        s.finish(&mut on).expect("no error");
        out
    }

    fn f(s: &str, end: u64) -> Got {
        Got::F(s.into(), end)
    }

    #[test]
    fn table() {
        // (name, max line bytes, chunks, expected)
        type Case = (&'static str, usize, Vec<&'static [u8]>, Vec<Got>);
        let cases: Vec<Case> = vec![
            ("one line", 10, vec![b"{}\n"], vec![f("{}", 3)]),
            (
                "crlf stripped",
                10,
                vec![b"{}\r\n[]\r\n"],
                vec![f("{}", 4), f("[]", 8)],
            ),
            (
                "no trailing newline",
                10,
                vec![b"{}\n[1]"],
                vec![f("{}", 3), f("[1]", 6)],
            ),
            (
                "keep-alives skipped",
                10,
                vec![b"\r\n\r\n{}\r\n \n\r\n"],
                vec![f("{}", 8)],
            ),
            (
                "split mid line",
                10,
                vec![b"{\"a", b"\":1}\n"],
                vec![f("{\"a\":1}", 8)],
            ),
            (
                "split in crlf",
                10,
                vec![b"{}\r", b"\n{}\r", b"\n"],
                vec![f("{}", 4), f("{}", 8)],
            ),
            ("exactly max", 4, vec![b"abcd\r\n"], vec![f("abcd", 6)]),
            (
                "exactly max split before cr",
                4,
                vec![b"abcd", b"\r", b"\n"],
                vec![f("abcd", 6)],
            ),
            (
                "oversize in one chunk",
                4,
                vec![b"abcde\nok\n"],
                vec![Got::Big, f("ok", 9)],
            ),
            (
                "oversize across chunks is discarded without buffering",
                4,
                vec![b"ab", b"cdefgh", b"ijk", b"lm\nok\n"],
                vec![Got::Big, f("ok", 17)],
            ),
            (
                "oversize at the newline",
                4,
                vec![b"abc", b"de\nz\n"],
                vec![Got::Big, f("z", 8)],
            ),
            (
                "oversize last line",
                2,
                vec![b"ok\nabc"],
                vec![f("ok", 3), Got::Big],
            ),
            ("empty input", 4, vec![], vec![]),
        ];
        for (name, max, chunks, want) in cases {
            assert_eq!(run(max, &chunks), want, "{name}");
        }
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let input: &[u8] = b"{\"a\":1}\r\n\r\n{\"bb\":22}\ntoo-long-line-here\n\n{}\r\nlast";
        let whole = run(12, &[input]);
        assert_eq!(
            whole,
            vec![
                f("{\"a\":1}", 9),
                f("{\"bb\":22}", 21),
                Got::Big,
                f("{}", 45),
                f("last", 49)
            ]
        );
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let got = run(12, &[&input[..i], &input[i..j], &input[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
    }

    /// Found by the `lines` fuzz target: a blank line over the limit was `Oversize` when a
    /// chunk boundary cut it and silently dropped when it arrived in one chunk.
    #[test]
    fn long_blank_line_is_oversize_however_it_is_cut() {
        let input: &[u8] = b"{}\r\n          \nbb\n";
        let want = vec![f("{}", 4), Got::Big, f("bb", 18)];
        assert_eq!(run(4, &[input]), want, "one chunk");
        for i in 0..=input.len() {
            assert_eq!(run(4, &[&input[..i], &input[i..]]), want, "split at {i}");
        }
    }

    #[test]
    fn errors_stop_feeding_and_reset_forgets() {
        let mut s = LineSplitter::new(8);
        let mut n = 0;
        let r = s.feed(b"a\nb\nc\n", &mut |_l| {
            n += 1;
            if n == 2 {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err("stop"));
        assert_eq!(n, 2);
        s.reset(100);
        s.feed(b"part", &mut |_l| Err::<(), ()>(()))
            .expect("partial line emits nothing");
        s.reset(100);
        let mut got = Vec::new();
        s.feed(b"x\n", &mut |l| -> Result<(), ()> {
            if let Line::Frame { bytes, end } = l {
                got.push((bytes.to_vec(), end));
            }
            Ok(())
        })
        .expect("ok");
        assert_eq!(got, vec![(b"x".to_vec(), 102)]);
        assert_eq!(s.offset(), 102);
    }
}
