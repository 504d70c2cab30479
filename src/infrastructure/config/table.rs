//! The machinery of the setting groups: each group is one table of [`Var`] rows, and each row
//! names its variable once, with its default, how it is read and how `check-config` shows it.

use std::net::IpAddr;
use std::str::FromStr;

use super::{AppEnv, ConfigError};

/// What a variable holds when it is unset (or blank: an empty value counts as unset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// This value, as written in `.env.example`.
    Fixed(&'static str),
    /// Nothing: the feature it configures is off or comes from elsewhere.
    Unset,
    /// Worked out at start (described here), e.g. from `APP_ENV` or the number of cores; the
    /// line of `.env.example` is commented out.
    Computed(&'static str),
}

/// A variable's name and default, for the documentation and its test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub default: Fallback,
}

/// What rows of other groups read before, for defaults that depend on them.
#[derive(Debug, Clone)]
pub struct Context {
    pub app_env: AppEnv,
    /// `HOST` and `PORT` (the default issuer names them); unset while the HTTP group is read.
    pub listen: Option<(IpAddr, u16)>,
}

/// A check of a group's values and the message when it fails.
pub type Check<G> = (fn(&G) -> bool, &'static str);

/// One row of a group's table.
pub struct Var<G> {
    pub name: &'static str,
    pub default: Fallback,
    /// Stores the value (after the fallback) into the group.
    pub read: fn(&mut G, &Value<'_>) -> Result<(), ConfigError>,
    /// The value in effect, as `check-config` prints it (secrets masked).
    pub show: fn(&G) -> String,
}

impl<G> Var<G> {
    /// The row's name and default.
    pub const fn variable(&self) -> Variable {
        Variable {
            name: self.name,
            default: self.default,
        }
    }
}

/// A group of settings read from one table, starting from `Default` (which no row leaves in
/// place: every row sets its field).
pub trait Group: Default + 'static {
    /// The rows, in the order they are read and printed.
    const VARS: &'static [Var<Self>];

    /// The checks of the group's values once every row is read: each a test and the message
    /// when it fails (the first failure is reported).
    const CHECKS: &'static [Check<Self>] = &[];

    /// [`Group::CHECKS`]; groups with a check that builds its message override this.
    fn check(&self) -> Result<(), ConfigError> {
        self.check_table()
    }

    /// The first of [`Group::CHECKS`] that fails, as an error.
    fn check_table(&self) -> Result<(), ConfigError> {
        match Self::CHECKS.iter().find(|(passes, _)| !passes(self)) {
            Some((_, message)) => Err(ConfigError((*message).to_owned())),
            None => Ok(()),
        }
    }

    /// Reads every row through `lookup`, then [`Group::check`].
    fn read(
        lookup: &dyn Fn(&str) -> Option<String>,
        context: &Context,
    ) -> Result<Self, ConfigError> {
        // Every row sets its field, so the default values are never seen.
        let mut group = Self::default();
        for var in Self::VARS {
            let raw = lookup(var.name).filter(|v| !v.trim().is_empty());
            let raw = match (raw, var.default) {
                (None, Fallback::Fixed(default)) => Some(default.to_owned()),
                (raw, _) => raw,
            };
            let value = Value {
                name: var.name,
                raw: raw.as_deref(),
                context,
            };
            (var.read)(&mut group, &value)?;
        }
        group.check()?;
        Ok(group)
    }

    /// Every row's name and shown value.
    fn entries(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        Self::VARS
            .iter()
            .map(move |var| (var.name, (var.show)(self)))
    }
}

/// The value of one variable as a row reads it.
pub struct Value<'a> {
    pub name: &'static str,
    /// After the fallback: `None` only for [`Fallback::Unset`] and [`Fallback::Computed`].
    pub raw: Option<&'a str>,
    pub context: &'a Context,
}

impl Value<'_> {
    /// The error for a value that is not one of `accepted` (which says what is).
    pub fn invalid(&self, accepted: &str) -> ConfigError {
        ConfigError(format!(
            "{}='{}' is not valid: must be {accepted}",
            self.name,
            self.raw.unwrap_or_default()
        ))
    }

    /// The trimmed value, parsed as `T`; `accepted` describes the values `T` takes.
    pub fn parse<T: FromStr>(&self, accepted: &str) -> Result<T, ConfigError> {
        self.raw
            .and_then(|raw| raw.trim().parse().ok())
            .ok_or_else(|| self.invalid(accepted))
    }

    /// A whole number of the type the field has.
    pub fn number<T: FromStr>(&self) -> Result<T, ConfigError> {
        self.parse("a whole number")
    }

    /// `true` or `false` (exactly, around white space).
    pub fn boolean(&self) -> Result<bool, ConfigError> {
        self.parse("true or false")
    }

    /// One of `choices` by its exact name.
    pub fn one_of<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        let raw = self.raw.unwrap_or_default();
        choices
            .iter()
            .find(|(name, _)| *name == raw)
            .map(|(_, choice)| *choice)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                self.invalid(&format!("one of {}", names.join(", ")))
            })
    }

    /// The value as it is written (a row with a [`Fallback::Fixed`] always has one).
    pub fn string(&self) -> Result<String, ConfigError> {
        self.raw
            .map(str::to_owned)
            .ok_or_else(|| self.invalid("set"))
    }

    /// The value as text, if set.
    pub fn text(&self) -> Option<String> {
        self.raw.map(str::to_owned)
    }

    /// The comma-separated items of the value, trimmed, blank ones left out.
    pub fn list(&self) -> Vec<String> {
        self.raw
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A list as `check-config` shows it.
pub fn show_list<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A [`Var`] row. `field = method(args)` stores `v.method(args)` (a [`Value`] parser) into the
/// field; `field <- function` stores `function(&group, v)`, for values that depend on rows read
/// before. The value is shown with `to_string()` unless a `show` function is given.
macro_rules! row {
    ($name:literal, $default:expr, $field:ident = $method:ident ( $($arg:expr),* )) => {
        row!($name, $default, $field = $method($($arg),*), show = |s| s.$field.to_string())
    };
    ($name:literal, $default:expr, $field:ident = $method:ident ( $($arg:expr),* ), show = $show:expr) => {
        $crate::infrastructure::config::table::Var {
            name: $name,
            default: $default,
            read: |s, v| {
                s.$field = v.$method($($arg),*)?;
                Ok(())
            },
            show: $show,
        }
    };
    ($name:literal, $default:expr, $field:ident <- $function:expr, show = $show:expr) => {
        $crate::infrastructure::config::table::Var {
            name: $name,
            default: $default,
            read: |s, v| {
                s.$field = $function(&*s, v)?;
                Ok(())
            },
            show: $show,
        }
    };
}
pub(crate) use row;
