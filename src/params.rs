//! Statement parameters.

use crate::value::Value;

/// Parameters bound to a statement, already converted to owned [`Value`]s so
/// they can travel to the worker.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parameters {
    pub(crate) positional: Vec<Value>,
    pub(crate) named: Vec<(String, Value)>,
    /// Named [`List`]s, kept apart from `named` because a list is not one
    /// value: it becomes one placeholder per element when the statement is
    /// rewritten.
    pub(crate) lists: Vec<(String, List)>,
}

impl Parameters {
    /// Parameters bound by position: the first value to `?1` (or `$1`), and so on.
    pub fn positional(values: Vec<Value>) -> Parameters {
        Parameters {
            positional: values,
            ..Parameters::default()
        }
    }

    /// Parameters bound by name; each name includes its prefix, as in `":name"`.
    pub fn named(values: Vec<(String, Value)>) -> Parameters {
        Parameters {
            named: values,
            ..Parameters::default()
        }
    }

    /// How many values there are; a [`List`] counts as one.
    pub fn len(&self) -> usize {
        self.positional.len() + self.named.len() + self.lists.len()
    }

    /// `true` when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A list of values for one named placeholder, which becomes one placeholder
/// per element: with three ids, `WHERE id IN (:ids)` runs as
/// `WHERE id IN ($1, $2, $3)` on PostgreSQL, `IN (?, ?, ?)` on MySQL and
/// `IN (?1, ?2, ?3)` on SQLite. Bind it by name with
/// [`named_params!`](crate::named_params!).
///
/// It is a type of its own, not a [`Value`] variant: a list is no SQL value
/// (no column holds one, no row returns one), so as a `Value` every driver
/// and every [`FromValue`](crate::FromValue) would have to refuse it; and
/// wrapping says "expand this" out loud, so a `Vec<u8>` stays one blob.
///
/// An empty list standing alone in `IN (:ids)` matches no row and in
/// `NOT IN (:ids)` matches every row, even where the left side is `NULL`,
/// as set logic says (`IN ()` is not valid SQL everywhere, so the statement
/// is rewritten for each database). An empty list anywhere else is an
/// error, and so is a list inside `ANY(...)`/`ALL(...)`, which takes one
/// array rather than a list of values.
///
/// ```
/// use sqlaio::{named_params, List};
///
/// let ids: List = [3, 5, 8].into();
/// assert_eq!(ids.len(), 3);
/// let names: List = ["Dana", "Casey"].into_iter().collect();
/// let params = named_params! { ":ids": ids, ":names": names, ":active": true };
/// assert_eq!(params.len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct List(pub(crate) Vec<Value>);

impl List {
    /// A list of the given values.
    pub fn new<I>(values: I) -> List
    where
        I: IntoIterator,
        I::Item: Into<Value>,
    {
        List(values.into_iter().map(Into::into).collect())
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `true` when it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Into<Value>> From<Vec<T>> for List {
    fn from(values: Vec<T>) -> List {
        List::new(values)
    }
}

impl<T: Into<Value>, const N: usize> From<[T; N]> for List {
    fn from(values: [T; N]) -> List {
        List::new(values)
    }
}

impl<T: Into<Value>> FromIterator<T> for List {
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> List {
        List::new(values)
    }
}

/// What [`named_params!`](crate::named_params!) accepts as a value: anything
/// that converts into a [`Value`], or a [`List`]. Used by the macro only.
#[doc(hidden)]
pub trait NamedValue {
    /// Adds `self` to `params` under `name`.
    fn add_to(self, name: String, params: &mut Parameters);
}

impl<T: Into<Value>> NamedValue for T {
    fn add_to(self, name: String, params: &mut Parameters) {
        params.named.push((name, self.into()));
    }
}

impl NamedValue for List {
    fn add_to(self, name: String, params: &mut Parameters) {
        params.lists.push((name, self));
    }
}

/// Anything that can be bound to a statement's placeholders.
///
/// Implemented for `()` (no parameters), tuples of up to 16 values that
/// convert into [`Value`] (`Option<T>` binds `NULL` for `None`), `Vec<Value>`,
/// `&[Value]`, arrays, [`Parameters`], and arrays or vectors of
/// `(name, value)` pairs for named placeholders. The [`params!`](crate::params!)
/// macro builds a positional list from values of mixed types.
///
/// ```
/// # futures::executor::block_on(async {
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// let sum: i64 = engine.scalar("SELECT ?1 + ?2", (40, 2)).await?;
/// assert_eq!(sum, 42);
/// let both: String = engine
///     .scalar("SELECT :a || :b", [(":a", "Casey "), (":b", "McCall")])
///     .await?;
/// assert_eq!(both, "Casey McCall");
/// let nothing: Option<i64> = engine.scalar("SELECT ?1", (None::<i64>,)).await?;
/// assert_eq!(nothing, None);
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
pub trait Params {
    /// Converts into owned parameters.
    fn into_parameters(self) -> Parameters;
}

impl Params for Parameters {
    fn into_parameters(self) -> Parameters {
        self
    }
}

impl Params for () {
    fn into_parameters(self) -> Parameters {
        Parameters::default()
    }
}

impl Params for Vec<Value> {
    fn into_parameters(self) -> Parameters {
        Parameters::positional(self)
    }
}

impl Params for &[Value] {
    fn into_parameters(self) -> Parameters {
        Parameters::positional(self.to_vec())
    }
}

impl Params for &Vec<Value> {
    fn into_parameters(self) -> Parameters {
        Parameters::positional(self.clone())
    }
}

impl<const N: usize> Params for [Value; N] {
    fn into_parameters(self) -> Parameters {
        Parameters::positional(self.into())
    }
}

impl<K: Into<String>, V: Into<Value>, const N: usize> Params for [(K, V); N] {
    fn into_parameters(self) -> Parameters {
        Parameters::named(
            self.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<Value>> Params for Vec<(K, V)> {
    fn into_parameters(self) -> Parameters {
        Parameters::named(
            self.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

macro_rules! tuple_params {
    ($($name:ident)+) => {
        impl<$($name: Into<Value>),+> Params for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_parameters(self) -> Parameters {
                let ($($name,)+) = self;
                Parameters::positional(vec![$($name.into()),+])
            }
        }
    };
}
tuple_params!(A);
tuple_params!(A B);
tuple_params!(A B C);
tuple_params!(A B C D);
tuple_params!(A B C D E);
tuple_params!(A B C D E F);
tuple_params!(A B C D E F G);
tuple_params!(A B C D E F G H);
tuple_params!(A B C D E F G H I);
tuple_params!(A B C D E F G H I J);
tuple_params!(A B C D E F G H I J K);
tuple_params!(A B C D E F G H I J K L);
tuple_params!(A B C D E F G H I J K L M);
tuple_params!(A B C D E F G H I J K L M N);
tuple_params!(A B C D E F G H I J K L M N O);
tuple_params!(A B C D E F G H I J K L M N O P);

/// Builds positional [`Parameters`] from values of mixed types.
///
/// ```
/// # futures::executor::block_on(async {
/// use sqlaio::params;
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// let text: String = engine
///     .scalar("SELECT ?1 || '-' || ?2 || '-' || ?3", params![1, "two", 3.5])
///     .await?;
/// assert_eq!(text, "1-two-3.5");
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
#[macro_export]
macro_rules! params {
    () => {
        $crate::Parameters::default()
    };
    ($($value:expr),+ $(,)?) => {
        $crate::Parameters::positional(::std::vec![$($crate::Value::from($value)),+])
    };
}

/// Builds named [`Parameters`] from `":name": value` pairs, spelled as in
/// rusqlite's macro of the same name.
///
/// Each name is kept as written, `:` included, as [`Parameters::named`]
/// keeps it: that is how SQLite looks its placeholders up, and how portable
/// statements spell theirs. A value is anything that converts into a
/// [`Value`] (`Option<T>` binds `NULL` for `None`), or a [`List`].
///
/// ```
/// # futures::executor::block_on(async {
/// use sqlaio::named_params;
/// let engine = sqlaio::Engine::builder().url("sqlite::memory:").build()?;
/// let text: String = engine
///     .scalar(
///         "SELECT :name || ' #' || :id || coalesce(:note, '')",
///         named_params! { ":id": 7, ":name": "Isaac Jaffe", ":note": None::<String> },
///     )
///     .await?;
/// assert_eq!(text, "Isaac Jaffe #7");
/// # Ok::<(), sqlaio::Error>(())
/// # }).unwrap();
/// ```
#[macro_export]
macro_rules! named_params {
    () => {
        $crate::Parameters::default()
    };
    ($($name:literal : $value:expr),+ $(,)?) => {{
        let mut params = $crate::Parameters::default();
        $(
            $crate::__private::NamedValue::add_to(
                $value,
                ::std::string::String::from($name),
                &mut params,
            );
        )+
        params
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_params_keeps_names_as_written_and_lists_apart() {
        let params = crate::named_params! {
            ":id": 1,
            ":name": "x",
            ":ids": List::from(vec![1, 2]),
            ":none": None::<i64>,
        };
        assert_eq!(
            params.named,
            vec![
                (":id".to_owned(), Value::Integer(1)),
                (":name".to_owned(), Value::Text("x".into())),
                (":none".to_owned(), Value::Null),
            ]
        );
        assert_eq!(
            params.lists,
            vec![(
                ":ids".to_owned(),
                List(vec![Value::Integer(1), Value::Integer(2)])
            )]
        );
        assert!(params.positional.is_empty());
        assert_eq!(params.len(), 4);
        assert_eq!(crate::named_params! {}, Parameters::default());
    }

    #[test]
    fn a_byte_vector_is_one_blob_unless_wrapped() {
        let params = crate::named_params! { ":b": vec![1u8, 2], ":l": List::from(vec![1u8, 2]) };
        assert_eq!(
            params.named,
            vec![(":b".to_owned(), Value::Blob(vec![1, 2]))]
        );
        assert_eq!(params.lists[0].1.len(), 2);
    }
}
