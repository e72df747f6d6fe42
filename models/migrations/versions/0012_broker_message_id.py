"""dead letters name the broker's id of their dead copy, on Redis or RabbitMQ

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The id under which the broker keeps the dead copy in `<queue>.XQ`: Redis gives every
    # enqueue its own id, RabbitMQ keeps the message id (workers/brokers.py dead_letter_key).
    op.alter_column("dead_letters", "redis_message_id", new_column_name="broker_message_id")


def downgrade() -> None:
    op.alter_column("dead_letters", "broker_message_id", new_column_name="redis_message_id")
