"""Upload tables: a survey (one upload of several files for one mine) and
its files. Files are stored under a name the service makes (the SHA-256 of
the bytes and the extension of the format the bytes showed); the client's
name is kept only as text to show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from supervision.db.base import Base


class Survey(Base):
    """One upload: the files, who sent them for which mine and when, and
    the check's result. ``fingerprint`` (the mine and the SHA-256 of every
    file) recognises the same survey sent again: it is not checked twice."""

    __tablename__ = "survey"
    id: Mapped[int] = mapped_column(primary_key=True)
    mine_id: Mapped[int] = mapped_column(ForeignKey("mine.id"), index=True)
    uploader_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    uploader: Mapped[str] = mapped_column(String(200))
    created_ns: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    via: Mapped[str] = mapped_column(String(16))  # "tus" | "multipart"
    description: Mapped[str] = mapped_column(Text, default="")
    licence_file: Mapped[str] = mapped_column(String(1000))
    #: what it is checked as: "underground" or "open_pit" (chosen at upload;
    #: a survey with a DSM raster is open pit)
    kind: Mapped[str] = mapped_column(
        String(16), default="underground", server_default="underground"
    )
    #: queued, running, done, failed (a copy of the job's, for listing)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    verdict: Mapped[str | None] = mapped_column(String(32))
    incidents: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    check_id: Mapped[str | None] = mapped_column(String(200))
    #: summary values of the result (worst exceedance, volume, points)
    values: Mapped[Any] = mapped_column(JSON, nullable=True)
    finished_ns: Mapped[int | None] = mapped_column(BigInteger)
    #: findings.json and report.html, relative to the uploads directory
    result_dir: Mapped[str | None] = mapped_column(String(200))
    files: Mapped[list[SurveyFile]] = relationship(
        back_populates="survey", order_by="SurveyFile.idx"
    )


class SurveyFile(Base):
    __tablename__ = "survey_file"
    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id"), index=True)
    idx: Mapped[int] = mapped_column(Integer)
    #: "scan" (checked), "description" (kept)
    kind: Mapped[str] = mapped_column(String(16))
    fmt: Mapped[str] = mapped_column(String(16))  # las, csv, ... as the bytes showed
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    #: relative to the uploads directory; made by the service
    stored: Mapped[str] = mapped_column(String(200))
    #: the client's name, for display only (never part of a path)
    client_name: Mapped[str] = mapped_column(String(300))
    #: the archive it came from (its client name), if any
    archive: Mapped[str | None] = mapped_column(String(300))
    survey: Mapped[Survey] = relationship(back_populates="files")
