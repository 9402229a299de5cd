-- The web app's accounts: a password for users who sign in, and server-side sessions.

-- An argon2id PHC string; NULL until the user sets a password (invitation or reset link).
ALTER TABLE users ADD COLUMN password_hash TEXT;
-- Sign-in finds a user by e-mail alone (the organization follows from the account).
CREATE INDEX users_by_email ON users (lower(email));

CREATE TABLE web_sessions (
    -- SHA-256 of the cookie's token: a stolen database holds no usable session.
    token_hash    TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    -- The absolute limit; the idle limit is measured from last_seen_at.
    expires_at    INTEGER NOT NULL,
    user_agent    TEXT,
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id)
) WITHOUT ROWID;
-- Deactivating a user ends all their sessions.
CREATE INDEX web_sessions_by_user ON web_sessions (org_id, user_id);
