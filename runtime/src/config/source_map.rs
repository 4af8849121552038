//! Maps byte offsets in a TOML file to key paths and key paths back to lines, so every
//! configuration error can name the file, the line and the key the user has to fix.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a key path: a table key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

/// A key path such as `joints[2].position_max_rad`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<PathSegment>);

impl KeyPath {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut next = self.clone();
        next.0.push(PathSegment::Key(key.to_owned()));
        next
    }

    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(PathSegment::Index(index));
        next
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for KeyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<document>");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(key) if i == 0 => f.write_str(key)?,
                PathSegment::Key(key) => write!(f, ".{key}")?,
                PathSegment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The parsed document with spans, plus the text for line and column lookups.
pub struct SourceMap<'a> {
    text: &'a str,
    root: Option<Spanned<DeTable<'a>>>,
}

impl<'a> SourceMap<'a> {
    /// Builds the map; a document with syntax errors is mapped as far as it could be parsed.
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            root: Some(DeTable::parse_recoverable(text).0),
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        // An offset may fall inside a multi-byte character: TOML error spans can point into
        // a byte-order mark, and `config::parse` steps back along a line byte by byte. Such
        // an offset counts as the start of its character.
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// The deepest key path whose key or value covers `offset`.
    pub fn path_at(&self, offset: usize) -> KeyPath {
        let mut path = KeyPath::root();
        if let Some(root) = &self.root {
            descend_table(root.get_ref(), offset, &mut path);
        }
        path
    }

    /// The span of the value at `path`, or of its nearest existing ancestor.
    pub fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let root = self.root.as_ref()?;
        let mut best: Option<Range<usize>> = None;
        let mut current: Option<&Spanned<DeValue<'a>>> = None;
        for segment in &path.0 {
            let next = match (segment, current) {
                (PathSegment::Key(key), None) => find_key(root.get_ref(), key),
                (PathSegment::Key(key), Some(value)) => match value.get_ref() {
                    DeValue::Table(table) => find_key(table, key),
                    _ => None,
                },
                (PathSegment::Index(index), Some(value)) => match value.get_ref() {
                    DeValue::Array(array) => array.get(*index),
                    _ => None,
                },
                (PathSegment::Index(_), None) => None,
            };
            match next {
                Some((key_span, value)) => {
                    // Point at the key when the value is a whole table (its span can start at
                    // the header of an unrelated sibling); at the value otherwise.
                    best = Some(match value.get_ref() {
                        DeValue::Table(_) => key_span.unwrap_or_else(|| value.span()),
                        _ => value.span(),
                    });
                    current = Some(value);
                }
                None => break,
            }
        }
        best
    }
}

type Found<'r, 'a> = (Option<Range<usize>>, &'r Spanned<DeValue<'a>>);

fn find_key<'r, 'a>(table: &'r DeTable<'a>, key: &str) -> Option<Found<'r, 'a>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(k, v)| (Some(k.span()), v))
}

trait ArrayGet<'a> {
    fn get(&self, index: usize) -> Option<Found<'_, 'a>>;
}

impl<'a> ArrayGet<'a> for toml::de::DeArray<'a> {
    fn get(&self, index: usize) -> Option<Found<'_, 'a>> {
        <[_]>::get(self, index).map(|v| (None, v))
    }
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

fn descend_table(table: &DeTable<'_>, offset: usize, path: &mut KeyPath) {
    for (key, value) in table.iter() {
        let key_hit = covers(&key.span(), offset);
        if key_hit || value_covers(value, offset) {
            path.0.push(PathSegment::Key(key.get_ref().to_string()));
            if !key_hit {
                descend_value(value, offset, path);
            }
            return;
        }
    }
}

fn descend_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut KeyPath) {
    match value.get_ref() {
        DeValue::Table(table) => descend_table(table, offset, path),
        DeValue::Array(array) => {
            for (index, item) in array.iter().enumerate() {
                if value_covers(item, offset) {
                    path.0.push(PathSegment::Index(index));
                    descend_value(item, offset, path);
                    return;
                }
            }
        }
        _ => {}
    }
}

/// Whether a value, or anything inside it, covers `offset`. Tables opened by a header
/// (`[robot]`, `[[joints]]`) do not always span their entries, so look inside.
fn value_covers(value: &Spanned<DeValue<'_>>, offset: usize) -> bool {
    if covers(&value.span(), offset) {
        return true;
    }
    match value.get_ref() {
        DeValue::Table(table) => table
            .iter()
            .any(|(k, v)| covers(&k.span(), offset) || value_covers(v, offset)),
        DeValue::Array(array) => array.iter().any(|item| value_covers(item, offset)),
        _ => false,
    }
}

/// One line per problem, as compilers print them: `file:line:column: message`, or
/// `file: message` for a problem of the whole file (line 0). Config files and reward
/// programs report their problems this way.
pub fn render_problems<M: std::fmt::Display>(
    file: &Path,
    problems: impl IntoIterator<Item = (usize, usize, M)>,
) -> String {
    problems
        .into_iter()
        .map(|(line, column, message)| {
            if line == 0 {
                format!("{}: {message}", file.display())
            } else {
                format!("{}:{line}:{column}: {message}", file.display())
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "a = 1\n[robot]\nname = \"x\"\nrate = 5.0\n[[joints]]\nname = \"j0\"\n[[joints]]\nname = \"j1\"\nmax = 3\n";

    #[test]
    fn finds_paths_by_offset() {
        let map = SourceMap::new(DOC);
        let offset = DOC.find("5.0").unwrap();
        assert_eq!(map.path_at(offset).to_string(), "robot.rate");
        let offset = DOC.find("3\n").unwrap();
        assert_eq!(map.path_at(offset).to_string(), "joints[1].max");
    }

    #[test]
    fn finds_lines_by_path() {
        let map = SourceMap::new(DOC);
        let path = KeyPath::root().key("joints").index(1).key("max");
        let span = map.span_of(&path).unwrap();
        assert_eq!(map.line_col(span.start), (9, 7));
        let path = KeyPath::root().key("robot").key("rate");
        assert_eq!(map.line_col(map.span_of(&path).unwrap().start).0, 4);
        // A key that does not exist resolves to its nearest ancestor.
        let path = KeyPath::root().key("robot").key("missing");
        assert_eq!(map.line_col(map.span_of(&path).unwrap().start).0, 2);
    }

    #[test]
    fn an_offset_inside_a_character_counts_as_its_start() {
        // A byte-order mark (3 bytes) and an `é` (2 bytes); found by fuzzing `config::parse`.
        let text = "\u{feff}a = \"\u{e9}\"\nb";
        let map = SourceMap::new(text);
        assert_eq!(map.line_col(1), (1, 1));
        assert_eq!(map.line_col(2), (1, 1));
        assert_eq!(map.line_col(3), (1, 2));
        assert_eq!(map.line_col(text.find('\u{e9}').unwrap() + 1), (1, 7));
        assert_eq!(map.line_col(text.len()), (2, 2));
    }
}
