#!/bin/sh
# Run once by the postgres image, when its data directory is first made (compose.yaml).
# `leadline migrate` creates leadline_app too (idempotently) and grants it its privileges;
# the login role the tenant sessions use only gets membership. psql quotes the password.
set -e
psql -v ON_ERROR_STOP=1 -v app_password="$POSTGRES_APP_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE leadline_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
CREATE ROLE leadline_tenant LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS PASSWORD :'app_password';
GRANT leadline_app TO leadline_tenant;
SQL
