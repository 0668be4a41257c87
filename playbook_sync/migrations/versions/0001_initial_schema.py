"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-21
"""
import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # pgvector must exist before any vector column; production images ship it.
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table('cp_knowledge_entries',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('context', sa.Text(), nullable=True),
    sa.Column('speaker', sa.Text(), nullable=True),
    sa.Column('transcript_type', sa.String(length=32), nullable=False),
    sa.Column('tags', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('source_ref', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('embedding', pgvector.sqlalchemy.vector.VECTOR(dim=1536), nullable=True),
    sa.Column('embedding_model', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_cp_knowledge_entries_created_at', 'cp_knowledge_entries', ['created_at'], unique=False)
    op.create_table('cp_playbook_sync_runs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('run_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('trigger', sa.Text(), server_default='manual', nullable=False),
    sa.Column('embedding_model', sa.Text(), nullable=True),
    sa.Column('base_sha', sa.Text(), nullable=True),
    sa.Column('entries_processed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('entries_enriched', sa.Integer(), server_default='0', nullable=False),
    sa.Column('entries_redundant', sa.Integer(), server_default='0', nullable=False),
    sa.Column('entries_orphaned', sa.Integer(), server_default='0', nullable=False),
    sa.Column('entries_deferred', sa.Integer(), server_default='0', nullable=False),
    sa.Column('entries_failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sops_enriched', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('sops_created', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('commit_sha', sa.Text(), nullable=True),
    sa.Column('commit_message', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default='running', nullable=False),
    sa.Column('error_log', sa.Text(), nullable=True),
    sa.Column('score_histogram', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('uq_cp_playbook_sync_runs_one_running', 'cp_playbook_sync_runs', ['status'], unique=True, postgresql_where=sa.text("status = 'running'"))
    op.create_table('cp_sop_embeddings',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('file_path', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('embedding', pgvector.sqlalchemy.vector.VECTOR(dim=1536), nullable=True),
    sa.Column('embedding_model', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('sop_id', sa.Text(), nullable=True),
    sa.Column('module', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('file_path')
    )
    op.create_table('cp_inserted_callouts',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('sop_file_path', sa.Text(), nullable=False),
    sa.Column('section', sa.Text(), nullable=False),
    sa.Column('entry_ids', sa.ARRAY(sa.UUID()), nullable=False),
    sa.Column('block_hash', sa.String(length=64), nullable=False),
    sa.Column('block', sa.Text(), nullable=False),
    sa.Column('run_id', sa.UUID(), nullable=False),
    sa.Column('commit_sha', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['cp_playbook_sync_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sop_file_path', 'block_hash', name='uq_cp_inserted_callouts_sop_block')
    )
    op.create_index('ix_cp_inserted_callouts_entry_ids', 'cp_inserted_callouts', ['entry_ids'], unique=False, postgresql_using='gin')
    op.create_index(op.f('ix_cp_inserted_callouts_run_id'), 'cp_inserted_callouts', ['run_id'], unique=False)
    op.create_table('cp_knowledge_sop_matches',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('knowledge_entry_id', sa.UUID(), nullable=False),
    sa.Column('sop_file_path', sa.Text(), nullable=True),
    sa.Column('section', sa.Text(), nullable=True),
    sa.Column('similarity_score', sa.Float(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('rationale', sa.Text(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('edit_summary', sa.Text(), nullable=True),
    sa.Column('sync_run_id', sa.UUID(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['knowledge_entry_id'], ['cp_knowledge_entries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sync_run_id'], ['cp_playbook_sync_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sync_run_id', 'knowledge_entry_id', 'sop_file_path', name='uq_cp_knowledge_sop_matches_run_entry_sop', postgresql_nulls_not_distinct=True)
    )
    op.create_index(op.f('ix_cp_knowledge_sop_matches_knowledge_entry_id'), 'cp_knowledge_sop_matches', ['knowledge_entry_id'], unique=False)
    op.create_index(op.f('ix_cp_knowledge_sop_matches_sync_run_id'), 'cp_knowledge_sop_matches', ['sync_run_id'], unique=False)
    op.create_table('cp_orphan_clusters',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('centroid', pgvector.sqlalchemy.vector.VECTOR(dim=1536), nullable=True),
    sa.Column('tags', sa.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('status', sa.String(length=16), server_default='open', nullable=False),
    sa.Column('sop_file_path', sa.Text(), nullable=True),
    sa.Column('promoted_run_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['promoted_run_id'], ['cp_playbook_sync_runs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('cp_sop_sections',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('sop_embedding_id', sa.UUID(), nullable=False),
    sa.Column('file_path', sa.Text(), nullable=False),
    sa.Column('heading', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('embedding', pgvector.sqlalchemy.vector.VECTOR(dim=1536), nullable=True),
    sa.ForeignKeyConstraint(['sop_embedding_id'], ['cp_sop_embeddings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_cp_sop_sections_embedding_hnsw', 'cp_sop_sections', ['embedding'], unique=False, postgresql_using='hnsw', postgresql_with={'m': 16, 'ef_construction': 64}, postgresql_ops={'embedding': 'vector_cosine_ops'})
    op.create_index(op.f('ix_cp_sop_sections_file_path'), 'cp_sop_sections', ['file_path'], unique=False)
    op.create_index(op.f('ix_cp_sop_sections_sop_embedding_id'), 'cp_sop_sections', ['sop_embedding_id'], unique=False)
    op.create_table('cp_sync_run_items',
    sa.Column('run_id', sa.UUID(), nullable=False),
    sa.Column('entry_id', sa.UUID(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('best_score', sa.Float(), nullable=True),
    sa.Column('best_sop', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['entry_id'], ['cp_knowledge_entries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['cp_playbook_sync_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'entry_id')
    )
    op.create_index(op.f('ix_cp_sync_run_items_entry_id'), 'cp_sync_run_items', ['entry_id'], unique=False)
    op.create_table('cp_orphan_members',
    sa.Column('entry_id', sa.UUID(), nullable=False),
    sa.Column('cluster_id', sa.UUID(), nullable=False),
    sa.Column('run_id', sa.UUID(), nullable=True),
    sa.Column('similarity', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['cluster_id'], ['cp_orphan_clusters.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['entry_id'], ['cp_knowledge_entries.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['cp_playbook_sync_runs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('entry_id')
    )
    op.create_index(op.f('ix_cp_orphan_members_cluster_id'), 'cp_orphan_members', ['cluster_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_cp_orphan_members_cluster_id'), table_name='cp_orphan_members')
    op.drop_table('cp_orphan_members')
    op.drop_index(op.f('ix_cp_sync_run_items_entry_id'), table_name='cp_sync_run_items')
    op.drop_table('cp_sync_run_items')
    op.drop_index(op.f('ix_cp_sop_sections_sop_embedding_id'), table_name='cp_sop_sections')
    op.drop_index(op.f('ix_cp_sop_sections_file_path'), table_name='cp_sop_sections')
    op.drop_index('ix_cp_sop_sections_embedding_hnsw', table_name='cp_sop_sections', postgresql_using='hnsw', postgresql_with={'m': 16, 'ef_construction': 64}, postgresql_ops={'embedding': 'vector_cosine_ops'})
    op.drop_table('cp_sop_sections')
    op.drop_table('cp_orphan_clusters')
    op.drop_index(op.f('ix_cp_knowledge_sop_matches_sync_run_id'), table_name='cp_knowledge_sop_matches')
    op.drop_index(op.f('ix_cp_knowledge_sop_matches_knowledge_entry_id'), table_name='cp_knowledge_sop_matches')
    op.drop_table('cp_knowledge_sop_matches')
    op.drop_index(op.f('ix_cp_inserted_callouts_run_id'), table_name='cp_inserted_callouts')
    op.drop_index('ix_cp_inserted_callouts_entry_ids', table_name='cp_inserted_callouts', postgresql_using='gin')
    op.drop_table('cp_inserted_callouts')
    op.drop_table('cp_sop_embeddings')
    op.drop_index('uq_cp_playbook_sync_runs_one_running', table_name='cp_playbook_sync_runs', postgresql_where=sa.text("status = 'running'"))
    op.drop_table('cp_playbook_sync_runs')
    op.drop_index('ix_cp_knowledge_entries_created_at', table_name='cp_knowledge_entries')
    op.drop_table('cp_knowledge_entries')
    op.execute("DROP EXTENSION IF EXISTS vector")
