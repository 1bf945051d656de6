-- Passwords on their way to applications, and each application's policy
-- for the temporary passwords the host makes.

-- The policy, as JSON (`store::PasswordPolicy`); `{}` is the default one.
ALTER TABLE applications ADD COLUMN password_policy TEXT NOT NULL DEFAULT '{}';

-- A user's password, sealed (`TokenCipher::seal_password`), kept until
-- every application that takes passwords has it. A new password replaces
-- it with a new generation.
CREATE TABLE user_passwords (
    user_id TEXT PRIMARY KEY,
    generation TEXT NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    set_at TEXT NOT NULL
);

-- The applications that accepted a user's password, and which one.
CREATE TABLE password_deliveries (
    user_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    generation TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (user_id, app_id)
);

-- Temporary passwords kept, sealed, for an operator to read once, where
-- the application's policy says so.
CREATE TABLE temporary_passwords (
    app_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    sealed BLOB NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
CREATE INDEX temporary_passwords_created ON temporary_passwords (created);
