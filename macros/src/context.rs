//! Where the function `#[pool_task]` is on sits: an attribute macro sees
//! only its item, so an associated function (in an `impl` or `trait` block)
//! looks like a free one. Expanded there, the registration and the marker
//! type (module-level items) are not allowed, and the generated functions
//! cannot name the task: rustc reports a handful of errors about names the
//! user never wrote. So the macro reads the source file at the function's
//! name and looks at the block around it; when that is an `impl` or a
//! `trait`, it reports one error of its own instead.
//!
//! Any doubt (no file, a name from another macro's expansion, source it
//! cannot follow) answers "not in a block": the expansion is then as
//! before, and rustc's errors remain the fallback.

use proc_macro2::Ident;

/// The kind of block a function sits directly in, when it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enclosing {
    Impl,
    Trait,
}

/// The block the function named `ident` sits directly in, when it is an
/// `impl` or a `trait`, as the source file says.
pub(crate) fn enclosing(ident: &Ident) -> Option<Enclosing> {
    if !proc_macro::is_available() {
        return None;
    }
    let span = ident.span().unwrap();
    let path = span.local_file()?;
    let source = std::fs::read_to_string(path).ok()?;
    let at = offset(&source, span.line(), span.column())?;
    let name = ident.to_string();
    // The name must be there: else the span is not where the source says.
    if !source[at..].starts_with(&name) {
        return None;
    }
    enclosing_at(&source[..at])
}

/// The byte offset of 1-based `line` and `column` (in characters).
fn offset(source: &str, line: usize, column: usize) -> Option<usize> {
    let start = if line <= 1 {
        0
    } else {
        source.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let rest = &source[start..];
    let within = match rest.char_indices().nth(column.checked_sub(1)?) {
        Some((i, _)) => i,
        None => return None,
    };
    Some(start + within)
}

/// The kind of the innermost block still open at the end of `before`.
fn enclosing_at(before: &str) -> Option<Enclosing> {
    let mut lexer = Lexer {
        bytes: before.as_bytes(),
        at: 0,
    };
    // Per open brace, the kind of its block; the header of the item (or
    // statement) being read at the current depth.
    // A macro's input (in any delimiter) or a parenthesis or bracket is
    // `Err(())`: tokens there need not be where the source puts them (a
    // macro may take `impl X { fn f() {} }` apart and emit `f` at module
    // level), so any such one open answers "not in a block".
    let mut open: Vec<Result<Option<Enclosing>, ()>> = Vec::new();
    let mut header = Header::default();
    // The previous token was a word other than `impl` (`name!` is a macro
    // call, `impl !Send` is not).
    let mut after_word = false;
    let mut invocation = false;
    while let Some(token) = lexer.next() {
        let word = matches!(token, Token::Ident(w) if w != b"impl");
        match token {
            Token::Open(b'{') => {
                open.push(if invocation {
                    Err(())
                } else {
                    Ok(header.kind())
                });
                header = Header::default();
                invocation = false;
            }
            Token::Close(b'}') => {
                open.pop();
                header = Header::default();
                invocation = false;
            }
            Token::Punct(b';') => {
                header = Header::default();
                invocation = false;
            }
            Token::Open(b) => {
                open.push(Err(()));
                header.open(b)
            }
            Token::Close(_) => {
                open.pop();
                header.close()
            }
            Token::Punct(b'#') => header.hash(),
            Token::Punct(b'!') => {
                invocation |= after_word;
                header.other()
            }
            Token::Ident(word) => header.ident(word),
            Token::Punct(_) | Token::Literal => header.other(),
        }
        after_word = word;
    }
    if open.iter().any(Result::is_err) {
        return None;
    }
    open.pop().and_then(Result::ok).flatten()
}

/// What the tokens of an item's header before its `{` say about it: its
/// first keyword, past attributes, visibility and qualifiers.
#[derive(Default)]
struct Header<'a> {
    /// The first word that is not a qualifier, if any came yet.
    first: Option<&'a [u8]>,
    /// Depth in brackets and parentheses skipped before it (`#[..]`,
    /// `pub(crate)`).
    skipping: usize,
    /// A `#` just came: the bracket after it is an attribute.
    hash: bool,
}

impl<'a> Header<'a> {
    fn kind(&self) -> Option<Enclosing> {
        match self.first? {
            b"impl" => Some(Enclosing::Impl),
            b"trait" => Some(Enclosing::Trait),
            _ => None,
        }
    }

    fn open(&mut self, bracket: u8) {
        let attribute = std::mem::take(&mut self.hash) && bracket == b'[';
        if self.skipping > 0 || (self.first.is_none() && (attribute || bracket == b'(')) {
            self.skipping += 1;
        } else {
            self.settle();
        }
    }

    fn close(&mut self) {
        self.hash = false;
        self.skipping = self.skipping.saturating_sub(1);
    }

    fn hash(&mut self) {
        self.hash = self.first.is_none();
    }

    fn ident(&mut self, word: &'a [u8]) {
        self.hash = false;
        if self.skipping > 0 || self.first.is_some() {
            return;
        }
        const QUALIFIERS: [&[u8]; 5] = [b"pub", b"unsafe", b"default", b"auto", b"safe"];
        if !QUALIFIERS.contains(&word) {
            self.first = Some(word);
        }
    }

    fn other(&mut self) {
        self.hash = false;
        self.settle();
    }

    /// Something that is no qualifier came first: the item is no block kind
    /// this cares about.
    fn settle(&mut self) {
        if self.skipping == 0 && self.first.is_none() {
            self.first = Some(b"");
        }
    }
}

enum Token<'a> {
    Ident(&'a [u8]),
    Open(u8),
    Close(u8),
    Punct(u8),
    /// A string, character or number.
    Literal,
}

/// Just enough of Rust's lexer to follow braces: comments, strings, raw
/// strings, characters and lifetimes are told apart.
struct Lexer<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.at + ahead).copied()
    }

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            let b = self.peek(0)?;
            match b {
                _ if b.is_ascii_whitespace() => self.at += 1,
                b'/' if self.peek(1) == Some(b'/') => self.skip_line(),
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                b'{' | b'(' | b'[' => {
                    self.at += 1;
                    return Some(Token::Open(b));
                }
                b'}' | b')' | b']' => {
                    self.at += 1;
                    return Some(Token::Close(b));
                }
                b'"' => {
                    self.skip_string();
                    return Some(Token::Literal);
                }
                b'\'' => {
                    if let Some(token) = self.quote() {
                        return Some(token);
                    }
                }
                _ if b == b'_' || b.is_ascii_alphanumeric() || b >= 0x80 => {
                    return Some(self.word());
                }
                _ => {
                    self.at += 1;
                    return Some(Token::Punct(b));
                }
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(b) = self.peek(0) {
            self.at += 1;
            if b == b'\n' {
                break;
            }
        }
    }

    fn skip_block_comment(&mut self) {
        let mut depth = 0usize;
        while let Some(b) = self.peek(0) {
            if b == b'/' && self.peek(1) == Some(b'*') {
                depth += 1;
                self.at += 2;
            } else if b == b'*' && self.peek(1) == Some(b'/') {
                depth -= 1;
                self.at += 2;
                if depth == 0 {
                    return;
                }
            } else {
                self.at += 1;
            }
        }
    }

    /// A `"`-delimited string, the opening quote next.
    fn skip_string(&mut self) {
        self.at += 1;
        while let Some(b) = self.peek(0) {
            self.at += 1;
            match b {
                b'\\' => self.at += 1,
                b'"' => return,
                _ => {}
            }
        }
    }

    /// A raw string's `#`s and quotes, right after its `r`.
    fn skip_raw_string(&mut self) {
        let mut hashes = 0;
        while self.peek(0) == Some(b'#') {
            hashes += 1;
            self.at += 1;
        }
        self.at += 1; // the opening quote
        while let Some(b) = self.peek(0) {
            self.at += 1;
            if b == b'"' && (0..hashes).all(|i| self.peek(i) == Some(b'#')) {
                self.at += hashes;
                return;
            }
        }
    }

    /// A character literal or a lifetime, the `'` next; `None` for a
    /// lifetime (its name follows as a word).
    fn quote(&mut self) -> Option<Token<'a>> {
        self.at += 1;
        if self.peek(0) == Some(b'\\') {
            self.at += 2;
            while let Some(b) = self.peek(0) {
                self.at += 1;
                if b == b'\'' {
                    break;
                }
            }
            return Some(Token::Literal);
        }
        // One character (of up to four bytes), then `'`: a character.
        let width = match self.peek(0)? {
            b if b < 0x80 => 1,
            b if b >= 0xf0 => 4,
            b if b >= 0xe0 => 3,
            _ => 2,
        };
        if self.peek(width) == Some(b'\'') {
            self.at += width + 1;
            return Some(Token::Literal);
        }
        // A lifetime: skip its name, which is no word of the header.
        while self
            .peek(0)
            .is_some_and(|b| b == b'_' || b.is_ascii_alphanumeric() || b >= 0x80)
        {
            self.at += 1;
        }
        Some(Token::Literal)
    }

    /// An identifier or keyword (or a raw or prefixed string, or a number).
    fn word(&mut self) -> Token<'a> {
        let start = self.at;
        while self
            .peek(0)
            .is_some_and(|b| b == b'_' || b.is_ascii_alphanumeric() || b >= 0x80)
        {
            self.at += 1;
        }
        let word = &self.bytes[start..self.at];
        let next = self.peek(0);
        match (word, next) {
            (b"r" | b"br" | b"cr", Some(b'"' | b'#')) => {
                if next == Some(b'#')
                    && word == b"r"
                    && self.peek(1) != Some(b'"')
                    && self.peek(1) != Some(b'#')
                {
                    // `r#ident`: a raw identifier.
                    self.at += 1;
                    return self.word();
                }
                self.skip_raw_string();
                Token::Literal
            }
            (b"b" | b"c", Some(b'"')) => {
                self.skip_string();
                Token::Literal
            }
            (b"b", Some(b'\'')) => {
                let _ = self.quote();
                Token::Literal
            }
            _ if word[0].is_ascii_digit() => Token::Literal,
            _ => Token::Ident(word),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{enclosing_at, Enclosing};

    fn at_marker(source: &str) -> Option<Enclosing> {
        enclosing_at(&source[..source.find("HERE").unwrap()])
    }

    #[test]
    fn blocks_are_told_apart() {
        assert_eq!(at_marker("fn a() {} HERE"), None);
        assert_eq!(at_marker("impl X { fn HERE"), Some(Enclosing::Impl));
        assert_eq!(
            at_marker("#[cfg(x)] pub(crate) unsafe impl<T: A> B for C<T> where T: D { fn HERE"),
            Some(Enclosing::Impl)
        );
        assert_eq!(at_marker("pub trait T { fn HERE"), Some(Enclosing::Trait));
        assert_eq!(at_marker("mod m { impl X {} fn HERE"), None);
        assert_eq!(at_marker("impl X { fn a() { fn HERE"), None);
        assert_eq!(at_marker("fn f() { let s = \"impl X {\"; fn HERE"), None);
        assert_eq!(at_marker("impl X { // }\n fn HERE"), Some(Enclosing::Impl));
        assert_eq!(
            at_marker("impl X { /* } /* } */ */ fn HERE"),
            Some(Enclosing::Impl)
        );
        assert_eq!(
            at_marker("impl X { const C: char = '}'; fn HERE"),
            Some(Enclosing::Impl)
        );
        assert_eq!(
            at_marker("impl<'a> X<'a> { fn a(x: &'a str) {} fn HERE"),
            Some(Enclosing::Impl)
        );
        assert_eq!(
            at_marker("impl X { const S: &str = r#\"}\"#; fn HERE"),
            Some(Enclosing::Impl)
        );
        assert_eq!(
            at_marker("impl X { const B: u8 = b'}'; fn HERE"),
            Some(Enclosing::Impl)
        );
        assert_eq!(
            at_marker("const _: () = { impl X { fn HERE"),
            Some(Enclosing::Impl)
        );
        assert_eq!(at_marker("fn f() { if x { fn HERE"), None);
        assert_eq!(
            at_marker("unsafe impl !Send for X { fn HERE"),
            Some(Enclosing::Impl)
        );
    }

    /// Tokens in a macro's input are not where the source puts them: a
    /// macro may take an `impl` apart and emit its functions at module
    /// level, where `#[pool_task]` is fine.
    #[test]
    fn macro_input_is_not_a_block() {
        assert_eq!(at_marker("hoist! { impl X { fn HERE"), None);
        assert_eq!(at_marker("hoist!(x; impl X { fn HERE"), None);
        assert_eq!(at_marker("hoist![trait T { fn HERE"), None);
        assert_eq!(at_marker("a::hoist! { trait T { fn HERE"), None);
        assert_eq!(at_marker("macro_rules! m { () => { impl X { fn HERE"), None);
        // Still an `impl` once the macro call is over.
        assert_eq!(
            at_marker("hoist! { impl X {} } impl Y { fn HERE"),
            Some(Enclosing::Impl)
        );
        assert_eq!(at_marker("m!(); impl Y { fn HERE"), Some(Enclosing::Impl));
    }

    /// Free functions after tricky-looking source stay free.
    #[test]
    fn free_functions_stay_free() {
        let cases = [
            "impl X { const C: char = '\\''; } fn HERE",
            "impl X { const C: char = '\"'; } fn HERE",
            "impl X { const C: char = '{'; } fn HERE",
            "impl X { const S: &[u8] = br##\"}\"#\"##; } fn HERE",
            "impl X { const S: &str = \"\\\\\"; } fn HERE",
            "impl X { /* /* { */ { */ } fn HERE",
            "/// impl X {\r\nfn a() {}\r\nfn HERE",
            "impl Foo<{ N }> for Bar { fn a() {} } fn HERE",
            "fn f() -> impl Iterator<Item = u8> { std::iter::empty() } fn HERE",
            "trait T { fn a(&self) { let _ = |x: u8| { x }; } } fn HERE",
            "impl<'a> X<'a> { fn a<'b>(x: &'b str) -> &'b str { 'l: loop { break 'l x; } } } fn HERE",
            "extern \"C\" { fn f(); } fn HERE",
            "fn r#impl() {} fn HERE",
            "let é = 'é'; fn HERE",
        ];
        for case in cases {
            assert_eq!(at_marker(case), None, "{case}");
        }
    }
}
