//! Statement parameters.

use crate::value::Value;

/// Parameters bound to a statement, already converted to owned [`Value`]s so
/// they can travel to the worker.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parameters {
    pub(crate) positional: Vec<Value>,
    pub(crate) named: Vec<(String, Value)>,
}

impl Parameters {
    /// Parameters bound by position: the first value to `?1` (or `$1`), and so on.
    pub fn positional(values: Vec<Value>) -> Parameters {
        Parameters {
            positional: values,
            named: Vec::new(),
        }
    }

    /// Parameters bound by name; each name includes its prefix, as in `":name"`.
    pub fn named(values: Vec<(String, Value)>) -> Parameters {
        Parameters {
            positional: Vec::new(),
            named: values,
        }
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.positional.len() + self.named.len()
    }

    /// `true` when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
