-- Passwords on their way to applications, and each application's policy
-- for the temporary passwords the host makes.

-- The policy (`store::PasswordPolicy`); `{}` is the default one.
ALTER TABLE applications ADD COLUMN password_policy JSONB NOT NULL DEFAULT '{}';

-- A user's password, sealed (`TokenCipher::seal_password`), kept until
-- every application that takes passwords has it. A new password replaces
-- it with a new generation.
CREATE TABLE user_passwords (
    user_id    TEXT COLLATE "C" PRIMARY KEY,
    generation TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    sealed     BYTEA NOT NULL,
    set_at     TIMESTAMPTZ NOT NULL
);

-- The applications that accepted a user's password, and which one. No
-- foreign keys: a delivery recorded as the user is deleted must not fail
-- the ledger write it belongs to; deleting a user deletes these rows.
CREATE TABLE password_deliveries (
    user_id      TEXT COLLATE "C" NOT NULL,
    app_id       TEXT COLLATE "C" NOT NULL,
    generation   TEXT NOT NULL,
    delivered_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, app_id)
);

-- Temporary passwords kept, sealed, for an operator to read once, where
-- the application's policy says so.
CREATE TABLE temporary_passwords (
    app_id  TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    nonce   BYTEA NOT NULL,
    sealed  BYTEA NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
CREATE INDEX temporary_passwords_created ON temporary_passwords (created);
