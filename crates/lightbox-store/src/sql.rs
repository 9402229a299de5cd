//! A small builder for queries whose WHERE clause depends on the request.
//! sqlx's own `QueryBuilder` writes `?` placeholders for the Any driver, which
//! PostgreSQL rejects; this one numbers them `$1, $2, …` for both backends.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::Any;

#[derive(Debug, Clone)]
pub enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
    NullText,
    NullInt,
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}
impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Text(s.clone())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<Option<i64>> for Value {
    fn from(i: Option<i64>) -> Self {
        i.map_or(Value::NullInt, Value::Int)
    }
}
impl From<Option<String>> for Value {
    fn from(s: Option<String>) -> Self {
        s.map_or(Value::NullText, Value::Text)
    }
}

#[derive(Debug)]
pub struct Sql {
    text: String,
    values: Vec<Value>,
    /// Whether the connection keeps the statement prepared (see [`Sql::plan_each_time`]).
    persistent: bool,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Sql {
            text: text.to_owned(),
            values: Vec::new(),
            persistent: true,
        }
    }

    /// Runs the query as an unnamed statement, planned for its values on every
    /// call. A prepared statement's plan may become PostgreSQL's generic plan,
    /// one for all values, which is wrong for queries whose best plan depends
    /// on a value (how common a search needle is).
    pub fn plan_each_time(&mut self) -> &mut Self {
        self.persistent = false;
        self
    }

    /// Whether [`Sql::plan_each_time`] was asked for (here or in an appended part).
    #[cfg(test)]
    pub fn plans_each_time(&self) -> bool {
        !self.persistent
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends `other`, renumbering its placeholders after this one's.
    pub fn append(&mut self, other: &Sql) -> &mut Self {
        let offset = self.values.len();
        let mut rest = other.text.as_str();
        while let Some(at) = rest.find('$') {
            self.text.push_str(&rest[..=at]);
            rest = &rest[at + 1..];
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits > 0 {
                let n: usize = rest[..digits].parse().expect("ascii digits");
                self.text.push_str(&(n + offset).to_string());
                rest = &rest[digits..];
            }
        }
        self.text.push_str(rest);
        self.values.extend(other.values.iter().cloned());
        self.persistent &= other.persistent;
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.values.len().to_string());
        self
    }

    /// Binds the next of the placeholders the text already numbers.
    pub fn arg(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut query = sqlx::query(&self.text).persistent(self.persistent);
        for value in &self.values {
            query = match value {
                Value::Text(s) => query.bind(s.as_str()),
                Value::Int(i) => query.bind(*i),
                Value::Bool(b) => query.bind(*b),
                Value::NullText => query.bind(None::<String>),
                Value::NullInt => query.bind(None::<i64>),
            };
        }
        query
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Sql;

    #[test]
    fn append_renumbers_placeholders_after_its_own() {
        let mut outer = Sql::new("EXPLAIN ");
        outer.push("SELECT ").bind(1i64);
        let mut inner = Sql::new("x = ");
        inner
            .bind("a")
            .push(" AND y = ")
            .bind(2i64)
            .push(" AND z = '$'");
        outer.append(&inner);
        assert_eq!(outer.text, "EXPLAIN SELECT $1x = $2 AND y = $3 AND z = '$'");
        assert_eq!(outer.values.len(), 3);
    }
}
