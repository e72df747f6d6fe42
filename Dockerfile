# One image for every role; the command picks it: intake, worker, scheduler, migrate.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# The app user owns only what it writes: backups (a named volume mounted on /backups starts
# with this owner and mode) and its state (the intake's outage spool).
RUN useradd --system --user-group --uid 10001 --home-dir /app leadline \
 && install -d -o leadline -g leadline -m 0700 /backups /var/lib/leadline
COPY requirements.lock pyproject.toml README.md ./
# The lock pins dev and embedded extras too; production installs only what runs.
RUN pip install --no-cache-dir uv==0.13.9 \
 && uv pip compile --quiet pyproject.toml -o /tmp/runtime.lock --constraint requirements.lock \
 && uv pip install --system --no-cache -r /tmp/runtime.lock
COPY leadline ./leadline
COPY models ./models
COPY workers ./workers
COPY tasks ./tasks
COPY intake ./intake
COPY scheduler ./scheduler
RUN uv pip install --system --no-cache --no-deps . && rm -rf /root/.cache
USER leadline
# Backups default to the /backups volume; set LEADLINE_BACKUP_URL (not _DIR) to move them.
ENV LEADLINE_ENV=production LEADLINE_STATE_DIR=/var/lib/leadline LEADLINE_BACKUP_URL=file:///backups
# Behind the TLS proxy, set LEADLINE_TRUSTED_PROXIES to its address (docs/intake.md): the
# intake reads X-Forwarded-For itself and uvicorn's FORWARDED_ALLOW_IPS is not used.
EXPOSE 8000
ENTRYPOINT ["leadline"]
CMD ["intake", "--host", "0.0.0.0", "--port", "8000"]
