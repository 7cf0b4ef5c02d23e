//! Byte offsets → `line:col` for messages: 1-based lines, 1-based columns in characters.
//!
//! Positions are worked out forward from a known earlier one ([`Position::advance`]), so a
//! reader that walks a file front to back pays once for every byte however many rows it
//! places — even when the whole file is one line, as machine-written JSON often is.

/// A place in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    /// Byte offset.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl Position {
    /// The start of the text.
    pub const START: Position = Position {
        offset: 0,
        line: 1,
        col: 1,
    };

    /// The position of byte offset `to`, at or after `self`, counting forward from `self`.
    pub fn advance(self, text: &str, to: usize) -> Position {
        let to = to.clamp(self.offset, text.len());
        let between = &text.as_bytes()[self.offset..to];
        match memchr::memrchr(b'\n', between) {
            None => Position {
                offset: to,
                line: self.line,
                col: self.col + chars(between),
            },
            Some(last) => Position {
                offset: to,
                line: self.line + memchr::memchr_iter(b'\n', between).count(),
                col: 1 + chars(&between[last + 1..]),
            },
        }
    }

    /// The position at `line` and byte column `byte_col` (1-based, as serde_json reports;
    /// 0 for the start of a line), with the column converted to characters.
    pub fn at_byte_col(text: &str, line: usize, byte_col: usize) -> Position {
        let start = if line <= 1 {
            0
        } else {
            memchr::memchr_iter(b'\n', text.as_bytes())
                .nth(line - 2)
                .map_or(text.len(), |newline| newline + 1)
        };
        let end = (start + byte_col.saturating_sub(1)).min(text.len());
        Position {
            offset: end,
            line: line.max(1),
            col: 1 + chars(&text.as_bytes()[start..end]),
        }
    }
}

/// Characters in UTF-8 `bytes`: the bytes that are not continuation bytes.
fn chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| (b as i8) >= -0x40).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_counts_lines_and_characters() {
        let text = "ab\ncdé\nfgh";
        let p = Position::START.advance(text, 1);
        assert_eq!((p.line, p.col), (1, 2));
        let q = p.advance(text, text.find('f').unwrap());
        assert_eq!((q.line, q.col), (3, 1));
        let r = Position::START.advance(text, text.find('é').unwrap() + 2);
        assert_eq!((r.line, r.col), (2, 4), "é is one character");
    }

    #[test]
    fn byte_columns_become_character_columns() {
        let text = "x\n\"é\" oops";
        // serde_json counts bytes: `o` is byte 6 of line 2 (1-based), character 5.
        let p = Position::at_byte_col(text, 2, 6);
        assert_eq!((p.line, p.col), (2, 5));
        assert_eq!(Position::at_byte_col(text, 1, 0).col, 1);
    }
}
