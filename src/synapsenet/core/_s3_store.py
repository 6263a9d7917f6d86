"""The S3 object store: objects in a bucket of any S3-compatible server.

:class:`S3ObjectStore` is re-exported by :mod:`synapsenet.core.storage`, which documents the
contract it honours. boto3 errors are translated here into the platform's hierarchy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import TYPE_CHECKING, BinaryIO

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from synapsenet.core._object_data import (
    DEFAULT_CHUNK_SIZE,
    MIN_PART_SIZE,
    MiB,
    ObjectData,
    ObjectInfo,
    _check_chunk_size,
    _check_range,
    _exact_chunks,
    _iter_data,
    _stream_of,
)
from synapsenet.core._storage_keys import _key_problem, _shorten, validate_key, validate_prefix
from synapsenet.env_vars import ENV_PREFIX
from synapsenet.errors import InvalidError, NotFoundError, SynapseNetError, UnavailableError

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_MISSING_BUCKET_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ObjectStore:
    """Objects in an S3 bucket (AWS, MinIO, or any S3-compatible server), under a prefix.

    A key ``a/b`` is the S3 key ``<prefix>/a/b``. Uploads of files and iterables go through
    boto3's managed transfer as multipart uploads of ``part_size`` parts: two parts upload
    while a third is read, so a put holds about three parts in memory whatever the object's
    size. A failed upload is aborted, so no partial object appears. Downloads stream the
    response body. The boto3 client is thread-safe, and so is the store.

    Args:
        bucket: Bucket name.
        prefix: Key prefix inside the bucket (no leading or trailing ``/`` needed).
        endpoint_url: S3-compatible endpoint; None means AWS. Path-style addressing is used
            for custom endpoints, which MinIO and most self-hosted servers need.
        region: Region of the bucket.
        access_key_id: Access key; None uses boto3's usual credential chain.
        secret_access_key: Secret key; None uses boto3's usual credential chain.
        create_bucket: Create the bucket if it does not exist (this contacts the server).
        part_size: Multipart part size in bytes, at least 5 MiB.
        connect_timeout: Seconds to wait for a connection.
        read_timeout: Seconds to wait for data on an open connection.
        max_attempts: Attempts per request, including the first (standard retry mode).

    Raises:
        InvalidError: If the bucket, prefix or part size is invalid.
        UnavailableError: If ``create_bucket`` is set and the server cannot be reached.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        create_bucket: bool = False,
        part_size: int = 8 * MiB,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        if not bucket or "/" in bucket or not bucket.isascii():
            raise InvalidError(f"Invalid S3 bucket name {bucket!r}.", field="bucket")
        prefix = prefix.strip("/")
        if prefix:
            validate_prefix(prefix)
        if not isinstance(part_size, int) or part_size < MIN_PART_SIZE:
            raise InvalidError(
                f"The 'part_size' parameter of S3ObjectStore must be an int >= {MIN_PART_SIZE}"
                f" (5 MiB, the smallest part S3 accepts). Got {part_size!r} instead.",
                field="part_size",
            )
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region = region
        self.part_size = part_size
        self._key_root = f"{prefix}/" if prefix else ""
        self._where = endpoint_url or "AWS S3"
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region,
        )
        config = BotoConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "max_attempts": max_attempts},
            max_pool_connections=16,
            tcp_keepalive=True,
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        self._client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self._transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=2,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        # Bounds the parts read ahead of the upload; boto3's default of 10 would buffer ten.
        self._transfer.max_in_memory_upload_chunks = 2
        if create_bucket:
            self._create_bucket()

    def __repr__(self) -> str:
        return f"S3ObjectStore(bucket={self.bucket!r}, prefix={self.prefix!r}, at {self._where})"

    @property
    def location(self) -> str:
        """The store as an ``s3://bucket/prefix`` URL."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _s3_key(self, key: str) -> str:
        return self._key_root + validate_key(key)

    def _translate(self, exc: Exception, action: str, key: str | None) -> SynapseNetError:
        """Map a boto error to the platform's hierarchy, naming the key and the endpoint."""
        subject = f"object {_shorten(key)} in {self.location}" if key else self.location
        if isinstance(exc, ClientError):
            code = _error_code(exc)
            if key is not None and code in _MISSING_CODES:
                return NotFoundError(
                    f"Object {_shorten(key)} does not exist in {self.location}.", key=key
                )
            if code == "NoSuchBucket":
                return UnavailableError(
                    f"S3 bucket {self.bucket!r} does not exist at {self._where}."
                )
            if code == "InvalidBucketName":
                return InvalidError(f"Invalid S3 bucket name {self.bucket!r}.", field="bucket")
            message = exc.response.get("Error", {}).get("Message", "").rstrip(".")
            return UnavailableError(
                f"S3 refused to {action} {subject} at {self._where}: {code} {message}".rstrip()
                + "."
            )
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return UnavailableError(
                f"No usable S3 credentials to {action} {subject}: set "
                f"{ENV_PREFIX}S3_ACCESS_KEY_ID and {ENV_PREFIX}S3_SECRET_ACCESS_KEY."
            )
        if isinstance(exc, ConnectionError | HTTPClientError):
            return UnavailableError(f"Cannot reach the S3 endpoint {self._where} ({exc}).")
        return UnavailableError(f"Could not {action} {subject} at {self._where}: {exc}.")

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError, Boto3Error) as exc:
            raise self._translate(exc, action, key) from exc

    def _create_bucket(self) -> None:
        with self._errors("create the bucket of"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _error_code(exc) not in _MISSING_BUCKET_CODES:
                    raise
            try:
                if self.region == "us-east-1":
                    self._client.create_bucket(Bucket=self.bucket)
                else:
                    self._client.create_bucket(
                        Bucket=self.bucket,
                        CreateBucketConfiguration={"LocationConstraint": self.region},  # type: ignore[typeddict-item]
                    )
            except ClientError as exc:
                # Another process created it between our check and our create.
                if _error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    def put(self, key: str, data: ObjectData) -> ObjectInfo:
        """Store ``data`` under ``key``; see :meth:`ObjectStore.put`.

        Small byte strings go in one PutObject; files and iterables stream through a
        multipart upload once they exceed one part.
        """
        s3_key = self._s3_key(key)
        with self._errors("write", key):
            if (
                isinstance(data, bytes | bytearray | memoryview)
                and memoryview(data).nbytes < self.part_size
            ):
                self._client.put_object(Bucket=self.bucket, Key=s3_key, Body=bytes(data))
            else:
                with _stream_of(_iter_data(data)) as stream:
                    self._client.upload_fileobj(stream, self.bucket, s3_key, Config=self._transfer)
        return self.stat(key)

    def _body(self, key: str) -> StreamingBody:
        s3_key = self._s3_key(key)
        with self._errors("read", key):
            return self._client.get_object(Bucket=self.bucket, Key=s3_key)["Body"]

    def get(self, key: str) -> bytes:
        """Read a whole object; see :meth:`ObjectStore.get`."""
        body = self._body(key)
        with self._errors("read", key):
            try:
                return body.read()
            finally:
                body.close()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Read part of an object with one ranged GET; see :meth:`ObjectStore.get_range`."""
        _check_range(offset, length)
        s3_key = self._s3_key(key)
        if length == 0:
            self.stat(key)  # a missing object still fails
            return b""
        with self._errors("read", key):
            try:
                response = self._client.get_object(
                    Bucket=self.bucket, Key=s3_key, Range=f"bytes={offset}-{offset + length - 1}"
                )
            except ClientError as exc:
                if _error_code(exc) != "InvalidRange":
                    raise
                self.stat(key)  # past the end of an existing object: nothing to read
                return b""
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def iter_chunks(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Stream an object in chunks; see :meth:`ObjectStore.iter_chunks`."""
        _check_chunk_size(chunk_size)
        return self._stream_body(key, self._body(key), chunk_size)

    def _stream_body(self, key: str, body: StreamingBody, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._errors("read", key):
                yield from _exact_chunks(body.read, chunk_size)
        finally:
            body.close()

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """Open an object for reading; see :meth:`ObjectStore.open`."""
        with _stream_of(self.iter_chunks(key)) as stream:
            yield stream

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        try:
            self.stat(key)
        except NotFoundError:
            return False
        return True

    def stat(self, key: str) -> ObjectInfo:
        """Describe an object; see :meth:`ObjectStore.stat`."""
        s3_key = self._s3_key(key)
        with self._errors("describe", key):
            head = self._client.head_object(Bucket=self.bucket, Key=s3_key)
        return ObjectInfo(
            key=key, size=head["ContentLength"], modified=head["LastModified"].astimezone(UTC)
        )

    def delete(self, key: str) -> bool:
        """Delete an object; see :meth:`ObjectStore.delete`.

        S3 does not say whether a deleted object existed, so this asks first; two
        concurrent deletes of one object may then both return True.
        """
        existed = self.exists(key)
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._s3_key(key))
        return existed

    def list(self, prefix: str = "") -> Iterator[str]:
        """Iterate over keys in sorted order; see :meth:`ObjectStore.list`.

        S3 lists in UTF-8 byte order, which is the code-point order of Python strings.
        Objects under the store's prefix whose names are not valid keys (folder markers
        ending in ``/``, for instance) are skipped.
        """
        validate_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        root_length = len(self._key_root)
        with self._errors("list"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key_root + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][root_length:]
                    if _key_problem(key) is None:
                        yield key

    @contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """S3 acknowledges a put only once it is durable: nothing to defer."""
        yield

    def ping(self) -> None:
        """Check that the endpoint answers and the bucket exists and is accessible."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _error_code(exc) in _MISSING_BUCKET_CODES:
                raise UnavailableError(
                    f"S3 bucket {self.bucket!r} does not exist at {self._where}."
                ) from exc
            raise self._translate(exc, "access", None) from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise self._translate(exc, "access", None) from exc

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()
