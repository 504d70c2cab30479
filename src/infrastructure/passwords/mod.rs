//! The blocklist of common passwords shipped with the service.
//!
//! `common-passwords.txt` holds the 10,000 most common passwords, most common first, lower-cased:
//! the head of the "passwords" frequency list of zxcvbn 4.5.0 (MIT licence), itself drawn from
//! leaked-password corpora. It is compiled into the binary, so nothing is read at run time.

use crate::domain::user::PasswordBlocklist;

const LIST: &str = include_str!("common-passwords.txt");

/// The shipped list, sorted for binary search: no allocation per entry.
pub struct CommonPasswords {
    sorted: Vec<&'static str>,
}

impl CommonPasswords {
    /// Loads the compiled-in list.
    pub fn load() -> Self {
        let mut sorted: Vec<&'static str> = LIST.lines().filter(|l| !l.is_empty()).collect();
        sorted.sort_unstable();
        Self { sorted }
    }

    /// How many passwords are on the list.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether the list is empty (it never is).
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }
}

impl PasswordBlocklist for CommonPasswords {
    fn contains(&self, lowercase: &str) -> bool {
        self.sorted.binary_search(&lowercase).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_ten_thousand_common_passwords() {
        let list = CommonPasswords::load();
        assert_eq!(list.len(), 10_000);
        for common in [
            "123456",
            "password",
            "qwerty",
            "iloveyou",
            "password1",
            "baseball",
        ] {
            assert!(list.contains(common), "{common}");
        }
        assert!(!list.contains("correct horse battery staple"));
    }
}
