//! SQL text built with its parameters, and filters as SQL conditions.

use super::super::{Field, Filter, Op};

/// SQL text with its positional parameters, built in order.
#[derive(Default)]
pub(super) struct Sql {
    pub text: String,
    pub params: Vec<rusqlite::types::Value>,
}

impl Sql {
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }
    pub fn bind(&mut self, v: impl Into<rusqlite::types::Value>) -> &mut Self {
        self.text.push('?');
        self.params.push(v.into());
        self
    }
    /// The SQL expression of a field.
    pub fn field(&mut self, f: &Field) -> &mut Self {
        match f {
            Field::Event(col) => self.push("e.").push(col),
            Field::EventProp(k) => self
                .push("json_extract(e.props, ")
                .bind(format!("$.\"{k}\""))
                .push(")"),
            Field::UserProp(k) => self
                .push("json_extract(p.properties, ")
                .bind(format!("$.\"{k}\""))
                .push(")"),
        }
    }
}

/// The SQL condition of a filter on an event (`e`) or a person (`p`).
pub(super) fn filter_sql(sql: &mut Sql, f: &Filter) {
    let number = f.value.parse::<f64>().ok();
    match f.op {
        Op::Exists => {
            sql.push("COALESCE(").field(&f.field).push(", '') <> ''");
        }
        Op::Eq | Op::Neq => {
            sql.push("COALESCE(CAST(")
                .field(&f.field)
                .push(" AS TEXT), '')");
            sql.push(if f.op == Op::Eq { " = " } else { " <> " });
            sql.bind(f.value.clone());
        }
        Op::Contains => {
            sql.push("instr(lower(CAST(")
                .field(&f.field)
                .push(" AS TEXT)), lower(")
                .bind(f.value.clone())
                .push(")) > 0");
        }
        Op::Gt | Op::Lt => {
            let cmp = if f.op == Op::Gt { " > " } else { " < " };
            match number {
                Some(n) => sql
                    .push("CAST(")
                    .field(&f.field)
                    .push(" AS REAL)")
                    .push(cmp)
                    .bind(n),
                None => sql.field(&f.field).push(cmp).bind(f.value.clone()),
            };
        }
    }
}
