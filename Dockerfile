# Image for docker-compose.yml: the same code runs as web, worker or migrate.
FROM python:3.12-slim
WORKDIR /app
COPY setup.cfg pyproject.toml README.md alembic.ini gunicorn.conf.py Procfile ./
COPY api api
COPY workers workers
COPY models models
COPY booking booking
COPY migrations migrations
RUN pip install --no-cache-dir -e . && useradd --system booking
USER booking
ENV PORT=8000 BIND_HOST=0.0.0.0
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "api:create_app()"]
