//! [`PasswordStore`] in PostgreSQL: `user_passwords` (sealed, one per
//! user), `password_deliveries` and `temporary_passwords` (sealed).

use super::*;

/// Seals `password` as the user's and forgets every delivery of the one it
/// replaces, in the caller's transaction; the same password set again
/// changes nothing (an identity provider may send it with every replace).
/// The caller appends the change that queues the user for a sync.
pub(super) fn store_password(
    transaction: &mut Tx<'_, '_>,
    cipher: &TokenCipher,
    user_id: &str,
    password: &Secret,
) -> Step<()> {
    let current = transaction.query_opt(
        "SELECT nonce, sealed FROM user_passwords WHERE user_id = $1",
        &[&user_id],
    )?;
    if current.is_some_and(|row| {
        let (nonce, sealed): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
        cipher.open_password(user_id, &nonce, &sealed).as_ref() == Some(password)
    }) {
        return Ok(());
    }
    let (nonce, sealed) = cipher
        .seal_password(user_id, password)
        .map_err(|error| StoreError::Secret(error.to_string()))?;
    transaction.execute(
        "INSERT INTO user_passwords (user_id, generation, nonce, sealed, set_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id) DO UPDATE SET generation = excluded.generation,
             nonce = excluded.nonce, sealed = excluded.sealed, set_at = excluded.set_at",
        &[&user_id, &new_id(), &nonce, &sealed, &Timestamp::now()],
    )?;
    transaction.execute(
        "DELETE FROM password_deliveries WHERE user_id = $1",
        &[&user_id],
    )?;
    Ok(())
}

/// Wipes what is kept of a user's passwords (the user is deleted).
pub(super) fn forget_passwords(transaction: &mut Tx<'_, '_>, user_id: &str) -> Step<()> {
    for statement in [
        "DELETE FROM user_passwords WHERE user_id = $1",
        "DELETE FROM password_deliveries WHERE user_id = $1",
        "DELETE FROM temporary_passwords WHERE user_id = $1",
    ] {
        transaction.execute(statement, &[&user_id])?;
    }
    Ok(())
}

/// Records what a request that the application accepted did with a
/// password, in the caller's transaction (see [`LedgerChange::PutWithPassword`]).
pub(super) fn record_password_sent(
    transaction: &mut Tx<'_, '_>,
    cipher: &TokenCipher,
    entry: &LedgerEntry,
    sent: PasswordSent<'_>,
) -> Step<()> {
    match sent {
        // Recorded only while that password is still kept: one replaced,
        // expired or whose user was deleted meanwhile leaves no row behind
        // (and fails no ledger write).
        PasswordSent::Own { generation } => {
            transaction.execute(
                "INSERT INTO password_deliveries (user_id, app_id, generation, delivered_at)
                 SELECT $1::text, $2::text, $3::text, $4::timestamptz WHERE EXISTS (
                     SELECT 1 FROM user_passwords WHERE user_id = $1 AND generation = $3)
                 ON CONFLICT (user_id, app_id) DO UPDATE SET generation = excluded.generation,
                     delivered_at = excluded.delivered_at",
                &[
                    &entry.object_id,
                    &entry.app_id,
                    &generation,
                    &Timestamp::now(),
                ],
            )?;
        }
        PasswordSent::Temporary { reveal: None } => {}
        PasswordSent::Temporary {
            reveal: Some(password),
        } => {
            let (nonce, sealed) = cipher
                .seal_temporary_password(&entry.app_id, &entry.object_id, password)
                .map_err(|error| StoreError::Secret(error.to_string()))?;
            transaction.execute(
                "INSERT INTO temporary_passwords (app_id, user_id, nonce, sealed, created)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (app_id, user_id) DO UPDATE SET nonce = excluded.nonce,
                     sealed = excluded.sealed, created = excluded.created",
                &[
                    &entry.app_id,
                    &entry.object_id,
                    &nonce,
                    &sealed,
                    &Timestamp::now(),
                ],
            )?;
        }
    }
    Ok(())
}

fn deliveries(
    transaction: &mut Session<'_, impl GenericClient>,
    user_id: &str,
    generation: &str,
) -> Step<Vec<String>> {
    let rows = transaction.query(
        "SELECT app_id FROM password_deliveries WHERE user_id = $1 AND generation = $2
         ORDER BY app_id",
        &[&user_id, &generation],
    )?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

impl PasswordStore for PostgresStore {
    fn set_password(&self, user_id: &str, password: &Secret) -> StoreResult<()> {
        self.write(|transaction| {
            let row = transaction
                .query_opt(
                    "SELECT user_name, active FROM users WHERE id = $1 FOR UPDATE",
                    &[&user_id],
                )?
                .ok_or_else(|| not_found("user", user_id))?;
            let (user_name, active): (String, bool) = (row.get(0), row.get(1));
            store_password(transaction, &self.cipher, user_id, password)?;
            append_change(
                transaction,
                user_id,
                ChangeKind::UserUpdated { user_name, active },
            )
        })
    }

    fn users_with_password_among(&self, user_ids: &[String]) -> StoreResult<Vec<String>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "SELECT user_id FROM user_passwords WHERE user_id = ANY($1)",
                &[&user_ids],
            )?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn user_password(&self, user_id: &str) -> StoreResult<Option<PendingPassword>> {
        let stored = self.read(|transaction| {
            let Some(row) = transaction.query_opt(
                "SELECT generation, nonce, sealed, set_at FROM user_passwords WHERE user_id = $1",
                &[&user_id],
            )?
            else {
                return Ok(None);
            };
            let generation: String = row.get(0);
            let delivered_to = deliveries(transaction, user_id, &generation)?;
            Ok(Some((
                generation,
                row.get::<_, Vec<u8>>(1),
                row.get::<_, Vec<u8>>(2),
                row.get::<_, Timestamp>(3),
                delivered_to,
            )))
        })?;
        let Some((generation, nonce, sealed, set_at, delivered_to)) = stored else {
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
        Ok(Some(PendingPassword {
            user_id: user_id.to_owned(),
            generation,
            secret,
            set_at,
            delivered_to,
        }))
    }

    fn passwords(&self) -> StoreResult<Vec<PasswordState>> {
        self.read(|transaction| {
            let rows = transaction.query(
                "SELECT p.user_id, p.generation, p.set_at,
                        COALESCE(array_agg(d.app_id ORDER BY d.app_id)
                                 FILTER (WHERE d.app_id IS NOT NULL), '{}')
                 FROM user_passwords p
                 LEFT JOIN password_deliveries d
                   ON d.user_id = p.user_id AND d.generation = p.generation
                 GROUP BY p.user_id, p.generation, p.set_at
                 ORDER BY p.set_at, p.user_id",
                &[],
            )?;
            Ok(rows
                .iter()
                .map(|row| PasswordState {
                    user_id: row.get(0),
                    generation: row.get(1),
                    set_at: row.get(2),
                    delivered_to: row.get(3),
                })
                .collect())
        })
    }

    fn wipe_password(&self, user_id: &str, generation: &str) -> StoreResult<bool> {
        self.write(|transaction| {
            let wiped = transaction.execute(
                "DELETE FROM user_passwords WHERE user_id = $1 AND generation = $2",
                &[&user_id, &generation],
            )?;
            if wiped > 0 {
                transaction.execute(
                    "DELETE FROM password_deliveries WHERE user_id = $1",
                    &[&user_id],
                )?;
            }
            Ok(wiped > 0)
        })
    }

    fn reveal_temporary_password(
        &self,
        app_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<Secret>> {
        let taken = self.write(|transaction| {
            let row = transaction.query_opt(
                "DELETE FROM temporary_passwords WHERE app_id = $1 AND user_id = $2
                 RETURNING nonce, sealed",
                &[&app_id, &user_id],
            )?;
            Ok(row.map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1))))
        })?;
        let Some((nonce, sealed)) = taken else {
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
    }

    fn wipe_temporary_passwords(&self, before: Timestamp) -> StoreResult<u64> {
        self.write(|transaction| {
            let wiped = transaction.execute(
                "DELETE FROM temporary_passwords WHERE created < $1",
                &[&before],
            )?;
            Ok(wiped)
        })
    }
}
