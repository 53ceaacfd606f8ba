//! Reads the verbatim Go `[]parsedEntry` tables of Prometheus' parser tests
//! (`expected_entries.go.txt`) into plain values, for the conformance test.
//! Only what those tables use is understood: string literals (raw and
//! interpreted), numbers, `labels.FromStrings(...)`, `string(model.MetricTypeX)`,
//! `math.Float64frombits(...)` (NaN), `int64p(n)` and the two helpers
//! `typeAndUnitLabels` / `todoDetectFamilySwitch` (their plain label set is used).

/// Sorted label pairs.
pub(super) type Pairs = Vec<(String, String)>;

/// One expected sample.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct GoSample {
    /// Series text as written in the input.
    pub m: String,
    /// Value; `None` for NaN.
    pub v: Option<f64>,
    pub t: Option<i64>,
    /// Sorted label pairs, `__name__` included.
    pub lset: Pairs,
    /// Exemplars: sorted labels, value, timestamp.
    pub es: Vec<(Pairs, f64, Option<i64>)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    Punct(char),
}

fn tokenize(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '`' {
            let end = (i + 1..chars.len())
                .find(|&j| chars[j] == '`')
                .expect("closing backtick");
            toks.push(Tok::Str(chars[i + 1..end].iter().collect()));
            i = end + 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            while chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                    match chars[i] {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'x' => {
                            let hex: String = chars[i + 1..i + 3].iter().collect();
                            s.push(char::from(u8::from_str_radix(&hex, 16).expect("hex")));
                            i += 2;
                        }
                        other => s.push(other),
                    }
                } else {
                    s.push(chars[i]);
                }
                i += 1;
            }
            toks.push(Tok::Str(s));
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else {
            toks.push(Tok::Punct(c));
            i += 1;
        }
    }
    toks
}

struct Cursor {
    toks: Vec<Tok>,
    i: usize,
}

impl Cursor {
    fn next(&mut self) -> Tok {
        let t = self
            .toks
            .get(self.i)
            .cloned()
            .expect("unexpected end of table");
        self.i += 1;
        t
    }

    fn ident(&mut self) -> String {
        match self.next() {
            Tok::Ident(s) => s,
            t => panic!("expected identifier, got {t:?}"),
        }
    }

    fn punct(&mut self, c: char) {
        assert_eq!(self.next(), Tok::Punct(c));
    }

    fn num(&mut self) -> String {
        match self.next() {
            Tok::Num(n) => n,
            t => panic!("expected number, got {t:?}"),
        }
    }

    /// `labels.FromStrings(args...)` as sorted pairs.
    fn label_set(&mut self) -> Vec<(String, String)> {
        assert_eq!(self.ident(), "labels");
        self.punct('.');
        assert_eq!(self.ident(), "FromStrings");
        self.punct('(');
        let mut args = Vec::new();
        loop {
            match self.next() {
                Tok::Punct(')') => break,
                Tok::Punct(',') => {}
                Tok::Str(s) => args.push(s),
                Tok::Ident(f) if f == "string" => {
                    // string(model.MetricTypeCounter) -> "counter"
                    self.punct('(');
                    assert_eq!(self.ident(), "model");
                    self.punct('.');
                    let t = self.ident();
                    self.punct(')');
                    args.push(t.trim_start_matches("MetricType").to_lowercase());
                }
                t => panic!("unexpected {t:?} in FromStrings"),
            }
        }
        let mut pairs: Vec<(String, String)> = args
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        pairs.sort();
        pairs
    }

    /// The plain (type-and-unit labels off) label set of an `lset:` value.
    fn lset(&mut self) -> Vec<(String, String)> {
        match self.toks.get(self.i) {
            Some(Tok::Ident(f)) if f == "typeAndUnitLabels" => {
                self.i += 1;
                self.punct('(');
                self.ident();
                self.punct(',');
                self.label_set();
                self.punct(',');
                self.label_set()
            }
            Some(Tok::Ident(f)) if f == "todoDetectFamilySwitch" => {
                self.i += 1;
                self.punct('(');
                self.ident();
                self.punct(',');
                self.label_set()
            }
            _ => self.label_set(),
        }
    }
}

/// The sample entries (those with an `lset:`) of a Go table. Go omits `v:` when it is 0.
pub(super) fn read_samples(go: &str) -> Vec<GoSample> {
    let mut c = Cursor {
        toks: tokenize(go),
        i: 0,
    };
    let mut out = Vec::new();
    let mut cur: Option<(GoSample, bool)> = None;
    while c.i + 1 < c.toks.len() {
        let (Tok::Ident(key), Tok::Punct(':')) = (&c.toks[c.i], &c.toks[c.i + 1]) else {
            c.i += 1;
            continue;
        };
        let key = key.clone();
        c.i += 2;
        match (key.as_str(), cur.as_mut()) {
            ("m", _) => {
                let Tok::Str(m) = c.next() else {
                    panic!("m is not a string")
                };
                if let Some((s, true)) = cur.take() {
                    out.push(s);
                }
                let sample = GoSample {
                    m,
                    v: Some(0.0),
                    t: None,
                    lset: Vec::new(),
                    es: Vec::new(),
                };
                cur = Some((sample, false));
            }
            ("v", Some((s, _))) => {
                s.v = match c.next() {
                    Tok::Num(n) => Some(n.parse().expect("float")),
                    _ => None, // math.Float64frombits(value.NormalNaN)
                };
            }
            ("t", Some((s, _))) => {
                assert_eq!(c.ident(), "int64p");
                c.punct('(');
                s.t = Some(c.num().parse().expect("int"));
            }
            ("lset", Some((s, is_sample))) => {
                s.lset = c.lset();
                *is_sample = true;
            }
            ("Labels", Some((s, _))) => s.es.push((c.label_set(), 0.0, None)),
            ("Value", Some((s, _))) => {
                s.es.last_mut().expect("exemplar").1 = c.num().parse().expect("float");
            }
            ("Ts", Some((s, _))) => {
                s.es.last_mut().expect("exemplar").2 = Some(c.num().parse().expect("int"));
            }
            _ => {}
        }
    }
    if let Some((s, true)) = cur {
        out.push(s);
    }
    out
}
