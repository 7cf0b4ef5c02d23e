//! Cutting recorded input (files, stdin) into frames whatever its shape: NDJSON, a
//! pretty-printed JSON document (a Mastodon status or an X search page as the API returns it),
//! several such documents one after another, or a JSON array whose elements are the frames (a
//! page of statuses, an export).
//!
//! Input → output: byte chunks cut anywhere → [`Piece`]s: complete frames, each with the
//! stream offset after it where reading can resume, and counted skips.
//!
//! The shape is read from the first byte that is not whitespace:
//! - `{`: when the first document ends on its first line, the input is NDJSON and is split into
//!   lines from there on by [`LineSplitter`], exactly as before; otherwise it is a sequence of
//!   JSON values, each document one frame however many lines it spans.
//! - `[`: a sequence of JSON values whose top-level arrays are unpacked: every element is a
//!   frame.
//! - anything else: NDJSON (each bad line is a frame the decoder counts as invalid JSON).
//!
//! Invariants:
//! - Memory is bounded: a frame is buffered up to `max_frame_bytes`; a longer one is reported
//!   once as `oversize` and the rest of it is discarded as it arrives. Nesting deeper than
//!   `max_depth` is reported once as `too_deep` and discarded the same way. While discarding,
//!   only a counter follows the nesting, so no input makes the scanner grow.
//! - The scanner only finds where values start and end (strings, escapes, brackets); whether a
//!   frame is valid JSON is the decoder's call, so a frame with a mistake inside is handed on
//!   and counted there, under the same reasons as a bad NDJSON line.
//! - Input that ends inside a frame is reported as `invalid_json`, never handed on.
//! - A frame carries an offset only where the input can be read again from (after a line, a
//!   document or a whole array), never inside an array: resuming there would start mid-array.

use super::lines::{Line, LineSplitter};
use crate::skip::SkipReason;

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A complete frame.
    Frame {
        /// Its bytes.
        bytes: &'a [u8],
        /// The stream offset where reading can resume after it; `None` inside an array.
        end: Option<u64>,
    },
    /// Input that did not become a frame, counted under `reason`.
    Skip {
        /// The count it goes under.
        reason: SkipReason,
        /// Bytes of it that were read before it was given up (0 when not followed).
        len: usize,
        /// Where it starts in the stream, where known.
        at: Option<u64>,
        /// What was wrong, for a log line.
        why: &'static str,
    },
}

/// The shape of the input, once its first byte is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Only whitespace so far.
    Undecided,
    /// One document per line.
    Lines,
    /// JSON values, arrays unpacked.
    Values,
}

/// Splits recorded input into frames; one per input.
#[derive(Debug, Clone)]
pub struct Framer {
    max_bytes: usize,
    max_depth: usize,
    shape: Shape,
    lines: LineSplitter,
    /// Stream offset of the next byte.
    offset: u64,
    /// The first value, starting with `{`, decides between lines and values.
    probe: bool,
    /// Where the first document started, once it turned out to be a line of NDJSON.
    ndjson_from: u64,
    /// Inside a top-level array: whether an element is expected (after `[` or `,`).
    array: Option<Expect>,
    /// The frame being read.
    frame: Option<Frame>,
    /// A complete array element waiting for its `,` or `]` (its bytes are in `buf`).
    pending: bool,
    buf: Vec<u8>,
}

/// What comes next inside an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Element,
    Separator,
}

/// The frame being read.
#[derive(Debug, Clone)]
struct Frame {
    kind: Kind,
    depth: u64,
    in_string: bool,
    escape: bool,
    /// Given up (already reported): the rest is followed, not kept.
    discarding: bool,
    len: usize,
    start: u64,
    /// A newline inside it: a multi-line document.
    newline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An object or array: ends at its closing bracket.
    Container,
    /// A scalar inside an array: ends at whitespace, `,` or `]`.
    Scalar,
    /// Top-level input that is neither an object nor an array: ends at the end of its line.
    Line,
}

impl Framer {
    /// A framer handing on frames of at most `max_bytes` bytes, nested at most `max_depth`
    /// deep, with stream offsets starting at `offset`.
    pub fn new(max_bytes: usize, max_depth: usize, offset: u64) -> Self {
        let mut lines = LineSplitter::new(max_bytes);
        lines.reset(offset);
        Self {
            max_bytes,
            max_depth,
            shape: Shape::Undecided,
            lines,
            offset,
            probe: false,
            ndjson_from: 0,
            array: None,
            frame: None,
            pending: false,
            buf: Vec::new(),
        }
    }

    /// A framer that splits lines only, whatever the input (a file being followed, where a
    /// document may still be being written).
    pub fn lines_only(max_bytes: usize, max_depth: usize, offset: u64) -> Self {
        let mut framer = Framer::new(max_bytes, max_depth, offset);
        framer.shape = Shape::Lines;
        framer
    }

    /// The shape found so far.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Feeds one chunk, calling `on` for every frame and skip in it; stops at `on`'s first
    /// error.
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        on: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut i = 0;
        while i < chunk.len() {
            match self.shape {
                Shape::Lines => return self.lines.feed(&chunk[i..], &mut lines_to_pieces(on)),
                Shape::Undecided => {
                    let b = chunk[i];
                    if b.is_ascii_whitespace() {
                        self.offset += 1;
                        i += 1;
                        continue;
                    }
                    match b {
                        b'{' => {
                            self.shape = Shape::Values;
                            self.probe = true;
                        }
                        b'[' => self.shape = Shape::Values,
                        _ => {
                            self.shape = Shape::Lines;
                            self.lines.reset(self.offset);
                        }
                    }
                }
                Shape::Values => {
                    let b = chunk[i];
                    let at = self.offset;
                    self.offset += 1;
                    i += 1;
                    if self.value_byte(b, at, on)? {
                        // The first document is on one line: the input is NDJSON, framed by
                        // lines from that document on, as if it had been from the start.
                        self.shape = Shape::Lines;
                        self.lines.reset(self.ndjson_from);
                        let first = std::mem::take(&mut self.buf);
                        self.lines.feed(&first, &mut lines_to_pieces(on))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the input: hands on what is complete and reports what was cut off.
    pub fn finish<E>(&mut self, on: &mut impl FnMut(Piece<'_>) -> Result<(), E>) -> Result<(), E> {
        match self.shape {
            Shape::Lines => self.lines.finish(&mut lines_to_pieces(on)),
            Shape::Undecided => Ok(()),
            Shape::Values => {
                if let Some(frame) = self.frame.take() {
                    match frame.kind {
                        _ if frame.discarding => {}
                        Kind::Line => {
                            let bytes = trim_end(&self.buf);
                            if !bytes.is_empty() {
                                on(Piece::Frame {
                                    bytes,
                                    end: Some(self.offset),
                                })?;
                            }
                        }
                        Kind::Scalar => self.pending = true,
                        Kind::Container => {
                            self.buf.clear();
                            on(Piece::Skip {
                                reason: SkipReason::InvalidJson,
                                len: frame.len,
                                at: Some(frame.start),
                                why: "JSON cut off at the end of the input",
                            })?;
                        }
                    }
                }
                if self.pending {
                    // An array cut off after a complete element: the element stands.
                    self.pending = false;
                    let result = on(Piece::Frame {
                        bytes: &self.buf,
                        end: None,
                    });
                    self.buf.clear();
                    result?;
                }
                self.array = None;
                Ok(())
            }
        }
    }

    /// One byte at stream offset `at` of value input; true when the input turns out to be
    /// NDJSON (the first document ended on its first line) and the rest goes to lines.
    fn value_byte<E>(
        &mut self,
        b: u8,
        at: u64,
        on: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<bool, E> {
        if let Some(frame) = &mut self.frame {
            if frame.kind == Kind::Scalar
                && !frame.in_string
                && (b.is_ascii_whitespace() || b == b',' || b == b']')
            {
                // The scalar ends before this byte, which is the array's again.
                let discarding = frame.discarding;
                self.frame = None;
                self.pending = !discarding;
                self.array = Some(Expect::Separator);
                return self.between_values(b, at, on);
            }
            if frame.kind == Kind::Line && b == b'\n' {
                let discarding = frame.discarding;
                self.frame = None;
                if !discarding {
                    let bytes = trim_end(&self.buf);
                    let result = if bytes.is_empty() {
                        Ok(())
                    } else {
                        on(Piece::Frame {
                            bytes,
                            end: Some(at + 1),
                        })
                    };
                    self.buf.clear();
                    result?;
                }
                return Ok(false);
            }
            frame.len += 1;
            if !frame.discarding {
                if self.buf.len() >= self.max_bytes {
                    frame.discarding = true;
                    self.buf.clear();
                    on(Piece::Skip {
                        reason: SkipReason::Oversize,
                        len: 0,
                        at: Some(frame.start),
                        why: "a document over max_frame_bytes",
                    })?;
                } else {
                    self.buf.push(b);
                }
            }
            if frame.in_string {
                if frame.escape {
                    frame.escape = false;
                } else if b == b'\\' {
                    frame.escape = true;
                } else if b == b'"' {
                    frame.in_string = false;
                }
                return Ok(false);
            }
            match b {
                b'"' => frame.in_string = true,
                b'\n' => frame.newline = true,
                b'{' | b'[' if frame.kind == Kind::Container => {
                    frame.depth += 1;
                    if frame.depth > self.max_depth as u64 && !frame.discarding {
                        frame.discarding = true;
                        self.buf.clear();
                        on(Piece::Skip {
                            reason: SkipReason::TooDeep,
                            len: 0,
                            at: Some(frame.start),
                            why: "a document nested deeper than max_json_depth",
                        })?;
                    }
                }
                b'}' | b']' if frame.kind == Kind::Container => {
                    frame.depth -= 1;
                    if frame.depth == 0 {
                        return self.container_ends(at + 1, on);
                    }
                }
                _ => {}
            }
            return Ok(false);
        }
        self.between_values(b, at, on)
    }

    /// A byte outside any frame: whitespace, an array's punctuation, or a new frame's first.
    fn between_values<E>(
        &mut self,
        b: u8,
        at: u64,
        on: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<bool, E> {
        if b.is_ascii_whitespace() {
            return Ok(false);
        }
        match (self.array, b) {
            (Some(expect), b',') => {
                if self.pending {
                    self.emit_pending(None, on)?;
                } else if expect == Expect::Element {
                    on(Piece::Skip {
                        reason: SkipReason::InvalidJson,
                        len: 0,
                        at: Some(at),
                        why: "an empty array element",
                    })?;
                }
                self.array = Some(Expect::Element);
                return Ok(false);
            }
            (Some(_), b']') => {
                // The array ends; its last element carries the position after it.
                if self.pending {
                    self.emit_pending(Some(at + 1), on)?;
                }
                self.array = None;
                return Ok(false);
            }
            // A missing comma: the element before stands on its own.
            (Some(Expect::Separator), _) if self.pending => self.emit_pending(None, on)?,
            (None, b'[') => {
                self.probe = false;
                self.array = Some(Expect::Element);
                return Ok(false);
            }
            _ => {}
        }
        let kind = match (self.array.is_some(), b) {
            (_, b'{' | b'[') => Kind::Container,
            (true, _) => Kind::Scalar,
            (false, _) => Kind::Line,
        };
        if self.array.is_some() {
            self.array = Some(Expect::Separator);
        }
        self.buf.clear();
        self.buf.push(b);
        self.frame = Some(Frame {
            kind,
            depth: u64::from(kind == Kind::Container),
            in_string: b == b'"',
            escape: false,
            discarding: false,
            len: 1,
            start: at,
            newline: false,
        });
        Ok(false)
    }

    /// The current container frame closed; `end` is the offset after its last byte.
    fn container_ends<E>(
        &mut self,
        end: u64,
        on: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<bool, E> {
        let Some(frame) = self.frame.take() else {
            return Ok(false);
        };
        let first = std::mem::take(&mut self.probe);
        if self.array.is_some() {
            self.pending = !frame.discarding;
            return Ok(false);
        }
        if first && !frame.newline {
            // Kept in `buf` for the line splitter.
            self.ndjson_from = frame.start;
            return Ok(true);
        }
        if !frame.discarding {
            let result = on(Piece::Frame {
                bytes: &self.buf,
                end: Some(end),
            });
            self.buf.clear();
            result?;
        }
        Ok(first && !frame.newline)
    }

    fn emit_pending<E>(
        &mut self,
        end: Option<u64>,
        on: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.pending = false;
        let result = on(Piece::Frame {
            bytes: &self.buf,
            end,
        });
        self.buf.clear();
        result
    }
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..n]
}

/// The line splitter's output as pieces.
fn lines_to_pieces<'o, E>(
    on: &'o mut impl FnMut(Piece<'_>) -> Result<(), E>,
) -> impl FnMut(Line<'_>) -> Result<(), E> + 'o {
    move |line| match line {
        Line::Frame { bytes, end } => on(Piece::Frame {
            bytes,
            end: Some(end),
        }),
        Line::Oversize => on(Piece::Skip {
            reason: SkipReason::Oversize,
            len: 0,
            at: None,
            why: "a line over max_frame_bytes",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Got {
        F(String, Option<u64>),
        S(SkipReason),
    }

    fn run(max: usize, depth: usize, chunks: &[&[u8]]) -> (Vec<Got>, Shape) {
        let mut framer = Framer::new(max, depth, 0);
        let mut out = Vec::new();
        let mut on = |p: Piece<'_>| -> Result<(), ()> {
            out.push(match p {
                Piece::Frame { bytes, end } => Got::F(String::from_utf8_lossy(bytes).into(), end),
                Piece::Skip { reason, .. } => Got::S(reason),
            });
            Ok(())
        };
        for c in chunks {
            framer.feed(c, &mut on).expect("no error");
        }
        framer.finish(&mut on).expect("no error");
        (out, framer.shape())
    }

    fn f(s: &str, end: Option<u64>) -> Got {
        Got::F(s.into(), end)
    }

    /// (name, input, expected pieces, expected shape); frames up to 32 bytes, 3 levels deep.
    type Case = (&'static str, &'static str, Vec<Got>, Shape);

    fn cases() -> Vec<Case> {
        use Got::S;
        use SkipReason::{InvalidJson, Oversize, TooDeep};
        vec![
            (
                "ndjson",
                "{\"a\":1}\r\n{\"b\":2}\n",
                vec![f("{\"a\":1}", Some(9)), f("{\"b\":2}", Some(17))],
                Shape::Lines,
            ),
            (
                "ndjson after blank lines, bad and cut-off lines as before",
                "\n {\"a\":1}\nnot json\n{\"b\":",
                vec![
                    f("{\"a\":1}", Some(10)),
                    f("not json", Some(19)),
                    f("{\"b\":", Some(24)),
                ],
                Shape::Lines,
            ),
            (
                "pretty-printed document",
                "{\n  \"a\": [1, 2],\n  \"b\": \"}\"\n}\n",
                vec![f("{\n  \"a\": [1, 2],\n  \"b\": \"}\"\n}", Some(29))],
                Shape::Values,
            ),
            (
                "two documents, the second on one line",
                "{\n\"a\":1}\n{\"b\":2}",
                vec![f("{\n\"a\":1}", Some(8)), f("{\"b\":2}", Some(16))],
                Shape::Values,
            ),
            (
                "array of documents and scalars",
                "[{\"a\":1},\n {\"b\":[1,2]} , \"s,]\\\"\",3]\n",
                vec![
                    f("{\"a\":1}", None),
                    f("{\"b\":[1,2]}", None),
                    f("\"s,]\\\"\"", None),
                    f("3", Some(35)),
                ],
                Shape::Values,
            ),
            ("empty array", " [ ]\n", vec![], Shape::Values),
            (
                "empty element",
                "[1,,2]",
                vec![f("1", None), S(InvalidJson), f("2", Some(6))],
                Shape::Values,
            ),
            (
                "oversize element is skipped, the next one stands",
                "[{\"a\":\"0123456789012345678901234567890\"},{\"b\":1}]",
                vec![S(Oversize), f("{\"b\":1}", Some(49))],
                Shape::Values,
            ),
            (
                "too deep element is skipped, the next one stands",
                "[{\"a\":[[[1]]]},{\"b\":[[1]]}]",
                vec![S(TooDeep), f("{\"b\":[[1]]}", Some(27))],
                Shape::Values,
            ),
            (
                "array cut off inside an element",
                "[{\"a\":1},{\"b\":",
                vec![f("{\"a\":1}", None), S(InvalidJson)],
                Shape::Values,
            ),
            (
                "array cut off after an element",
                "[{\"a\":1}",
                vec![f("{\"a\":1}", None)],
                Shape::Values,
            ),
            (
                "document cut off",
                "{\n  \"a\": \"b",
                vec![S(InvalidJson)],
                Shape::Values,
            ),
            (
                "text before anything else is read as lines",
                "hello\n[1]\n",
                vec![f("hello", Some(6)), f("[1]", Some(10))],
                Shape::Lines,
            ),
            ("whitespace only", " \r\n\t\n", vec![], Shape::Undecided),
        ]
    }

    #[test]
    fn table() {
        for (name, input, want, shape) in cases() {
            assert_eq!(run(32, 3, &[input.as_bytes()]), (want, shape), "{name}");
        }
    }

    #[test]
    fn every_split_point_gives_the_same_pieces() {
        for (name, input, want, shape) in cases() {
            let input = input.as_bytes();
            for i in 0..=input.len() {
                let got = run(32, 3, &[&input[..i], &input[i..]]);
                assert_eq!(got, (want.clone(), shape), "{name}: split at {i}");
            }
        }
    }

    #[test]
    fn discarded_input_is_followed_without_buffering() {
        // A hostile element: 4 MiB of ever deeper nesting, never closed.
        let mut framer = Framer::new(1024, 64, 0);
        let mut skips = Vec::new();
        let mut on = |p: Piece<'_>| -> Result<(), ()> {
            match p {
                Piece::Skip { reason, at, .. } => skips.push((reason, at)),
                Piece::Frame { .. } => panic!("no frame expected"),
            }
            Ok(())
        };
        framer.feed(b"[", &mut on).unwrap();
        let chunk = vec![b'['; 64 * 1024];
        for _ in 0..64 {
            framer.feed(&chunk, &mut on).unwrap();
        }
        assert!(framer.buf.capacity() <= 1024, "{}", framer.buf.capacity());
        framer.finish(&mut on).unwrap();
        // Reported once, where it started; the cut-off end adds nothing.
        assert_eq!(skips, [(SkipReason::TooDeep, Some(1))]);
    }

    #[test]
    fn lines_only_never_reads_documents() {
        let mut framer = Framer::lines_only(64, 8, 100);
        let mut out = Vec::new();
        let mut on = |p: Piece<'_>| -> Result<(), ()> {
            if let Piece::Frame { bytes, end } = p {
                out.push((bytes.to_vec(), end));
            }
            Ok(())
        };
        framer.feed(b"{\n\"a\":1}\n", &mut on).unwrap();
        framer.finish(&mut on).unwrap();
        assert_eq!(
            out,
            [
                (b"{".to_vec(), Some(102)),
                (b"\"a\":1}".to_vec(), Some(109))
            ]
        );
    }
}
