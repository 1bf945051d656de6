//! Users' passwords on their way to applications, and each application's
//! policy for the temporary passwords the host makes.
//!
//! A password the directory takes (inbound SCIM, the admin API) is kept
//! only until every application that takes passwords has it: the store
//! keeps it sealed ([`TokenCipher::seal_password`], its own associated
//! data, so a sealed password moved onto another user or into a token's
//! place does not open) together with the applications it was delivered
//! to. The engine decides which applications are owed it (it knows the
//! connectors) and wipes it once none is, or once it waited too long.
//!
//! Invariants every backend keeps:
//! - a password is stored sealed, never in clear, and is never part of a
//!   user's document, an event, a change or a ledger entry;
//! - setting a password replaces one not yet delivered: deliveries are
//!   recorded per password (its `generation`), so a delivery of the old
//!   one does not count for the new one, and a wipe names the generation
//!   it wipes, so it never takes a password set after its decision;
//! - a delivery is recorded in the transaction that records what the
//!   application accepted ([`LedgerChange::PutWithPassword`]), so a crash
//!   neither loses a delivery nor makes one count twice;
//! - a temporary password is kept (sealed) only when the application's
//!   policy reveals it once, and reading it takes it away.

use super::*;

/// Whether an application gets passwords, what a temporary password is
/// made of, and whether an operator may read it. The host makes one for each account it creates
/// in an application that takes passwords, for a user without a password
/// of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Whether passwords are sent to the application at all, when its
    /// connector takes them: off for an application that refuses them.
    pub send: bool,
    /// How many characters (8–128).
    pub length: u16,
    /// Each enabled class is present at least once.
    pub lowercase: bool,
    pub uppercase: bool,
    pub digits: bool,
    pub symbols: bool,
    /// Whether an operator may read the temporary password once, to hand
    /// it to the user, or never.
    pub reveal: Reveal,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            send: true,
            length: 20,
            lowercase: true,
            uppercase: true,
            digits: true,
            symbols: true,
            reveal: Reveal::Never,
        }
    }
}

/// Whether a temporary password may be read by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reveal {
    /// Nobody ever sees it: the user resets it in the application.
    #[default]
    Never,
    /// Kept sealed until an operator reads it once (or it expires).
    Once,
}

/// The fewest and most characters a temporary password may have.
pub const PASSWORD_LENGTHS: std::ops::RangeInclusive<u16> = 8..=128;

impl PasswordPolicy {
    /// Why the policy cannot make a password, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let classes = self.classes();
        if !PASSWORD_LENGTHS.contains(&self.length) {
            return Err(format!(
                "a temporary password's length must be {} to {}, not {}",
                PASSWORD_LENGTHS.start(),
                PASSWORD_LENGTHS.end(),
                self.length
            ));
        }
        if classes.is_empty() {
            return Err(
                "a temporary password needs at least one character class (lowercase, \
                 uppercase, digits, symbols)"
                    .into(),
            );
        }
        Ok(())
    }

    /// The characters of each enabled class.
    pub fn classes(&self) -> Vec<&'static str> {
        [
            (self.lowercase, "abcdefghijkmnopqrstuvwxyz"),
            (self.uppercase, "ABCDEFGHJKLMNPQRSTUVWXYZ"),
            (self.digits, "23456789"),
            (self.symbols, "!#$%&*+-=?@^_~"),
        ]
        .into_iter()
        .filter_map(|(enabled, characters)| enabled.then_some(characters))
        .collect()
    }
}

/// A user's password, opened, with what the store knows of its deliveries.
#[derive(Debug, Clone)]
pub struct PendingPassword {
    pub user_id: String,
    /// Which password this is: a new one is set with a new generation.
    pub generation: String,
    pub secret: Secret,
    pub set_at: Timestamp,
    /// The applications that accepted it.
    pub delivered_to: Vec<String>,
}

/// A stored password without its secret: what the engine's sweep decides
/// on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordState {
    pub user_id: String,
    pub generation: String,
    pub set_at: Timestamp,
    pub delivered_to: Vec<String>,
}

/// The password a request carried, recorded with what the application
/// accepted ([`LedgerChange::PutWithPassword`]).
#[derive(Debug, Clone, Copy)]
pub enum PasswordSent<'a> {
    /// The user's own password, of this generation: its delivery to the
    /// entry's application is recorded.
    Own { generation: &'a str },
    /// A temporary password the host made. Kept sealed for an operator to
    /// read once when the application's policy reveals it (`reveal`), else
    /// not kept at all.
    Temporary { reveal: Option<&'a Secret> },
}

pub trait PasswordStore: Send + Sync {
    /// Sets a user's password: sealed, replacing one not yet delivered
    /// everywhere, and the user queued for a sync (a `user.updated`
    /// change), in one transaction. (A SCIM create or replace carries its
    /// password in its [`UserWrite`] instead, so that the user and their
    /// password land together.)
    fn set_password(&self, user_id: &str, password: &Secret) -> StoreResult<()>;
    /// The user's password, opened, if one is waiting for delivery.
    fn user_password(&self, user_id: &str) -> StoreResult<Option<PendingPassword>>;
    /// Which of `user_ids` have a password waiting for delivery, in no
    /// particular order, none of them opened: what a caller asks of many
    /// users at once before reading the few it names with
    /// [`Self::user_password`].
    fn users_with_password_among(&self, user_ids: &[String]) -> StoreResult<Vec<String>>;
    /// Every password waiting for delivery, without secrets.
    fn passwords(&self) -> StoreResult<Vec<PasswordState>>;
    /// Wipes the user's password if it is still `generation`: whether it
    /// was.
    fn wipe_password(&self, user_id: &str, generation: &str) -> StoreResult<bool>;
    /// The temporary password made for the user's account in the
    /// application, if the policy kept it and nobody read it yet. Reading
    /// it wipes it.
    fn reveal_temporary_password(&self, app_id: &str, user_id: &str)
    -> StoreResult<Option<Secret>>;
    /// Wipes the temporary passwords kept since before `before`, unread:
    /// how many.
    fn wipe_temporary_passwords(&self, before: Timestamp) -> StoreResult<u64>;
}
