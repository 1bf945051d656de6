//! [`PasswordStore`] in SQLite: `user_passwords` (sealed, one per user),
//! `password_deliveries` and `temporary_passwords` (sealed).

use super::*;

/// Seals `password` as the user's and forgets every delivery of the one it
/// replaces, in the caller's transaction; the same password set again
/// changes nothing (an identity provider may send it with every replace).
/// The caller appends the change that queues the user for a sync.
pub(super) fn store_password(
    transaction: &Connection,
    cipher: &TokenCipher,
    user_id: &str,
    password: &Secret,
) -> StoreResult<()> {
    let current: Option<(Vec<u8>, Vec<u8>)> = transaction
        .prepare_cached("SELECT nonce, sealed FROM user_passwords WHERE user_id = ?1")?
        .query_row([user_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    if current.is_some_and(|(nonce, sealed)| {
        cipher.open_password(user_id, &nonce, &sealed).as_ref() == Some(password)
    }) {
        return Ok(());
    }
    let (nonce, sealed) = cipher
        .seal_password(user_id, password)
        .map_err(|error| StoreError::Secret(error.to_string()))?;
    transaction
        .prepare_cached(
            "INSERT INTO user_passwords (user_id, generation, nonce, sealed, set_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (user_id) DO UPDATE SET generation = excluded.generation,
                 nonce = excluded.nonce, sealed = excluded.sealed, set_at = excluded.set_at",
        )?
        .execute(params![user_id, new_id(), nonce, sealed, Timestamp::now()])?;
    transaction
        .prepare_cached("DELETE FROM password_deliveries WHERE user_id = ?1")?
        .execute([user_id])?;
    Ok(())
}

/// Wipes what is kept of a user's passwords (the user is deleted).
pub(super) fn forget_passwords(transaction: &Connection, user_id: &str) -> StoreResult<()> {
    for statement in [
        "DELETE FROM user_passwords WHERE user_id = ?1",
        "DELETE FROM password_deliveries WHERE user_id = ?1",
        "DELETE FROM temporary_passwords WHERE user_id = ?1",
    ] {
        transaction.prepare_cached(statement)?.execute([user_id])?;
    }
    Ok(())
}

/// Records what a request that the application accepted did with a
/// password, in the caller's transaction (see [`LedgerChange::PutWithPassword`]).
pub(super) fn record_password_sent(
    transaction: &Connection,
    cipher: &TokenCipher,
    entry: &LedgerEntry,
    sent: PasswordSent<'_>,
) -> StoreResult<()> {
    match sent {
        // Recorded only while that password is still kept: one replaced,
        // expired or whose user was deleted meanwhile leaves no row behind.
        PasswordSent::Own { generation } => {
            transaction
                .prepare_cached(
                    "INSERT INTO password_deliveries (user_id, app_id, generation, delivered_at)
                     SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (
                         SELECT 1 FROM user_passwords WHERE user_id = ?1 AND generation = ?3)
                     ON CONFLICT (user_id, app_id) DO UPDATE SET generation = excluded.generation,
                         delivered_at = excluded.delivered_at",
                )?
                .execute(params![
                    entry.object_id,
                    entry.app_id,
                    generation,
                    Timestamp::now()
                ])?;
        }
        PasswordSent::Temporary { reveal: None } => {}
        PasswordSent::Temporary {
            reveal: Some(password),
        } => {
            let (nonce, sealed) = cipher
                .seal_temporary_password(&entry.app_id, &entry.object_id, password)
                .map_err(|error| StoreError::Secret(error.to_string()))?;
            transaction
                .prepare_cached(
                    "INSERT INTO temporary_passwords (app_id, user_id, nonce, sealed, created)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (app_id, user_id) DO UPDATE SET nonce = excluded.nonce,
                         sealed = excluded.sealed, created = excluded.created",
                )?
                .execute(params![
                    entry.app_id,
                    entry.object_id,
                    nonce,
                    sealed,
                    Timestamp::now()
                ])?;
        }
    }
    Ok(())
}

fn deliveries(
    connection: &Connection,
    user_id: &str,
    generation: &str,
) -> StoreResult<Vec<String>> {
    let mut statement = connection.prepare_cached(
        "SELECT app_id FROM password_deliveries WHERE user_id = ?1 AND generation = ?2
         ORDER BY app_id",
    )?;
    let apps = statement
        .query_map([user_id, generation], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(apps)
}

impl PasswordStore for SqliteStore {
    fn set_password(&self, user_id: &str, password: &Secret) -> StoreResult<()> {
        self.write(|transaction| {
            let (user_name, active): (String, bool) = transaction
                .query_row(
                    "SELECT user_name, active FROM users WHERE id = ?1",
                    [user_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| not_found("user", user_id))?;
            store_password(transaction, &self.cipher, user_id, password)?;
            append_change(
                transaction,
                user_id,
                ChangeKind::UserUpdated { user_name, active },
            )
        })
    }

    fn users_with_password_among(&self, user_ids: &[String]) -> StoreResult<Vec<String>> {
        let wanted = serde_json::to_string(user_ids)
            .map_err(|error| StoreError::Backend(format!("user ids: {error}")))?;
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT user_passwords.user_id
                 FROM (SELECT DISTINCT value FROM json_each(?1)) AS wanted
                 CROSS JOIN user_passwords ON user_passwords.user_id = wanted.value",
            )?;
            let users = statement
                .query_map([wanted], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(users)
        })
    }

    fn user_password(&self, user_id: &str) -> StoreResult<Option<PendingPassword>> {
        self.read(|connection| {
            let Some((generation, nonce, sealed, set_at)) = connection
                .prepare_cached(
                    "SELECT generation, nonce, sealed, set_at FROM user_passwords
                     WHERE user_id = ?1",
                )?
                .query_row([user_id], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, Vec<u8>>(2)?,
                        row.get::<_, Timestamp>(3)?,
                    ))
                })
                .optional()?
            else {
                return Ok(None);
            };
            let secret = self
                .cipher
                .open_password(user_id, &nonce, &sealed)
                .ok_or_else(|| {
                    StoreError::Secret(format!(
                        "the password of user {user_id} does not open under this host key; \
                         set it again"
                    ))
                })?;
            let delivered_to = deliveries(connection, user_id, &generation)?;
            Ok(Some(PendingPassword {
                user_id: user_id.to_owned(),
                generation,
                secret,
                set_at,
                delivered_to,
            }))
        })
    }

    fn passwords(&self) -> StoreResult<Vec<PasswordState>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT user_id, generation, set_at FROM user_passwords ORDER BY set_at, user_id",
            )?;
            let stored: Vec<(String, String, Timestamp)> = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<Result<_, _>>()?;
            stored
                .into_iter()
                .map(|(user_id, generation, set_at)| {
                    let delivered_to = deliveries(connection, &user_id, &generation)?;
                    Ok(PasswordState {
                        user_id,
                        generation,
                        set_at,
                        delivered_to,
                    })
                })
                .collect()
        })
    }

    fn wipe_password(&self, user_id: &str, generation: &str) -> StoreResult<bool> {
        self.write(|transaction| {
            let wiped = transaction
                .prepare_cached(
                    "DELETE FROM user_passwords WHERE user_id = ?1 AND generation = ?2",
                )?
                .execute([user_id, generation])?;
            if wiped > 0 {
                transaction
                    .prepare_cached("DELETE FROM password_deliveries WHERE user_id = ?1")?
                    .execute([user_id])?;
            }
            Ok(wiped > 0)
        })
    }

    fn reveal_temporary_password(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<Secret>> {
        self.write(|transaction| {
            let Some((nonce, sealed)) = transaction
                .query_row(
                    "DELETE FROM temporary_passwords WHERE app_id = ?1 AND user_id = ?2
                     RETURNING nonce, sealed",
                    [app_id, user_id],
                    |row| Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?)),
                )
                .optional()?
            else {
                return Ok(None);
            };
            self.cipher
                .open_temporary_password(app_id, user_id, &nonce, &sealed)
                .map(Some)
                .ok_or_else(|| {
                    StoreError::Secret(
                        "the temporary password does not open under this host key".into(),
                    )
                })
        })
    }

    fn wipe_temporary_passwords(&self, before: Timestamp) -> StoreResult<u64> {
        self.write(|transaction| {
            let wiped = transaction
                .prepare_cached("DELETE FROM temporary_passwords WHERE created < ?1")?
                .execute([before])?;
            Ok(wiped as u64)
        })
    }
}
