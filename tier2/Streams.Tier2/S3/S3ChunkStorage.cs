using System.Buffers.Binary;
using System.Net;
using System.Runtime.CompilerServices;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Streams.Common.Hashing;

namespace Streams.Tier2.S3;

/// <summary>
/// Chunks as objects in an S3 bucket under a prefix. A PutObject is atomic: the object appears whole or not at all.
/// Chunks larger than the part size go up as a multipart upload, completed (atomically) or aborted.
/// <para>
/// S3-compatible servers: requests use path-style addressing and plain (not "aws-chunked") bodies, since several
/// servers would otherwise store the chunk signatures inside the object. The contract tests read every chunk back
/// and compare it byte for byte against a real S3-protocol server.
/// </para>
/// <para>
/// Integrity in transit: every upload carries the CRC-32C of its bytes (<c>x-amz-checksum-crc32c</c>), computed here
/// from the same buffer the storage writer checksummed: a PutObject its chunk's, each part its own, and a multipart
/// upload the whole chunk's (checksum type FULL_OBJECT, checked by S3 when it assembles the parts). S3 refuses a body
/// that does not match (BadDigest) and stores nothing, so a chunk damaged on its way is never recorded as flushed and
/// the log is not truncated behind it: the write fails and the storage writer sends it again. Servers that ignore the
/// header (s3rver does) store what arrives; reads are still checked against the recorded CRC-32C before serving.
/// </para>
/// </summary>
internal sealed class S3ChunkStorage : IChunkStorage
{
    private readonly AmazonS3Client _client;
    private readonly S3ChunkStorageOptions _options;
    private readonly string _prefix;

    public S3ChunkStorage(S3ChunkStorageOptions options)
        : this(options, null)
    {
    }

    /// <param name="options">Where and how to reach the bucket.</param>
    /// <param name="httpClientFactory">The SDK's HTTP clients (tests put handlers into the pipeline); null for the SDK's own.</param>
    internal S3ChunkStorage(S3ChunkStorageOptions options, HttpClientFactory? httpClientFactory)
    {
        options.Validate();
        _options = options;
        _prefix = options.Prefix.Trim('/') is { Length: > 0 } p ? p + "/" : "";
        var config = new AmazonS3Config
        {
            ForcePathStyle = options.ForcePathStyle ?? options.Endpoint is not null,
            Timeout = options.RequestTimeout,
            MaxErrorRetry = 2,
            AuthenticationRegion = options.Region,
            // Checksums are given explicitly on each upload (below), not computed by the SDK over a trailer.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
        };
        if (httpClientFactory is not null)
        {
            config.HttpClientFactory = httpClientFactory;
        }

        if (options.Endpoint is { } endpoint)
        {
            config.ServiceURL = endpoint;
        }
        else
        {
            config.RegionEndpoint = Amazon.RegionEndpoint.GetBySystemName(options.Region);
        }

        _client = options.AccessKey is { } key
            ? new AmazonS3Client(new BasicAWSCredentials(key, options.SecretKey ?? ""), config)
            : new AmazonS3Client(config);
    }

    public string Location => $"s3://{_options.Bucket}/{_prefix}" + (_options.Endpoint is { } e ? $" at {e}" : "");

    public Task WriteAsync(string name, ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        var key = KeyOf(name);
        return Call(name, async () =>
        {
            if (data.Length <= _options.MultipartPartSize)
            {
                await _client.PutObjectAsync(new PutObjectRequest
                {
                    BucketName = _options.Bucket,
                    Key = key,
                    InputStream = new ReadOnlyMemoryStream(data),
                    AutoCloseStream = true,
                    UseChunkEncoding = false,
                    ChecksumAlgorithm = ChecksumAlgorithm.CRC32C,
                    ChecksumCRC32C = Crc32CHeader(Crc32C.Compute(data.Span)),
                }, cancellationToken);
            }
            else
            {
                await WriteMultipartAsync(key, data, cancellationToken);
            }

            return 0;
        });
    }

    public Task<int> ReadAsync(string name, long offset, Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var key = KeyOf(name);
        if (buffer.Length == 0)
        {
            return Task.FromResult(0);
        }

        return Call(name, async () =>
        {
            GetObjectResponse response;
            try
            {
                response = await _client.GetObjectAsync(new GetObjectRequest
                {
                    BucketName = _options.Bucket,
                    Key = key,
                    ByteRange = new ByteRange(offset, offset + buffer.Length - 1),
                }, cancellationToken);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                return 0; // At or past the end of the chunk.
            }

            using (response)
            {
                var total = 0;
                while (total < buffer.Length)
                {
                    var read = await response.ResponseStream.ReadAsync(buffer[total..], cancellationToken);
                    if (read == 0)
                    {
                        break;
                    }

                    total += read;
                }

                return total;
            }
        });
    }

    public Task<long> GetLengthAsync(string name, CancellationToken cancellationToken = default)
    {
        var key = KeyOf(name);
        return Call(name, async () =>
        {
            var metadata = await _client.GetObjectMetadataAsync(_options.Bucket, key, cancellationToken);
            return metadata.ContentLength;
        });
    }

    public async Task<bool> ExistsAsync(string name, CancellationToken cancellationToken = default)
    {
        try
        {
            await GetLengthAsync(name, cancellationToken);
            return true;
        }
        catch (ChunkNotFoundException)
        {
            return false;
        }
    }

    public Task DeleteAsync(string name, CancellationToken cancellationToken = default)
    {
        var key = KeyOf(name);
        return Call(name, async () =>
        {
            await _client.DeleteObjectAsync(_options.Bucket, key, cancellationToken);
            return 0;
        });
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = new ListObjectsV2Request { BucketName = _options.Bucket, Prefix = _prefix + prefix };
        while (true)
        {
            var page = await Call(prefix, () => _client.ListObjectsV2Async(request, cancellationToken));
            foreach (var o in page.S3Objects ?? [])
            {
                yield return o.Key[_prefix.Length..];
            }

            if (page.IsTruncated != true || string.IsNullOrEmpty(page.NextContinuationToken))
            {
                yield break;
            }

            request.ContinuationToken = page.NextContinuationToken;
        }
    }

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }

    private async Task WriteMultipartAsync(string key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var upload = await _client.InitiateMultipartUploadAsync(new InitiateMultipartUploadRequest
        {
            BucketName = _options.Bucket,
            Key = key,
            ChecksumAlgorithm = ChecksumAlgorithm.CRC32C,
            ChecksumType = ChecksumType.FULL_OBJECT,
        }, cancellationToken);
        try
        {
            var parts = new List<PartETag>();
            var whole = 0xFFFFFFFFu;
            for (int offset = 0, number = 1; offset < data.Length; offset += _options.MultipartPartSize, number++)
            {
                var part = data.Slice(offset, Math.Min(_options.MultipartPartSize, data.Length - offset));
                var partCrc = Crc32CHeader(Crc32C.Compute(part.Span));
                whole = Crc32C.Append(whole, part.Span);
                var uploaded = await _client.UploadPartAsync(new UploadPartRequest
                {
                    BucketName = _options.Bucket,
                    Key = key,
                    UploadId = upload.UploadId,
                    PartNumber = number,
                    PartSize = part.Length,
                    InputStream = new ReadOnlyMemoryStream(part),
                    UseChunkEncoding = false,
                    ChecksumAlgorithm = ChecksumAlgorithm.CRC32C,
                    ChecksumCRC32C = partCrc,
                }, cancellationToken);
                parts.Add(new PartETag(number, uploaded.ETag) { ChecksumCRC32C = partCrc });
            }

            await _client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
            {
                BucketName = _options.Bucket,
                Key = key,
                UploadId = upload.UploadId,
                PartETags = parts,
                ChecksumType = ChecksumType.FULL_OBJECT,
                ChecksumCRC32C = Crc32CHeader(~whole),
                MpuObjectSize = data.Length,
            }, cancellationToken);
        }
        catch
        {
            try
            {
                await _client.AbortMultipartUploadAsync(_options.Bucket, key, upload.UploadId, CancellationToken.None);
            }
            catch (Exception e) when (e is AmazonServiceException or AmazonClientException or HttpRequestException)
            {
                // The upload stays incomplete; a bucket lifecycle rule for incomplete uploads reclaims it.
            }

            throw;
        }
    }

    /// <summary>S3's form of a CRC-32C: the four bytes big-endian, in base64.</summary>
    private static string Crc32CHeader(uint crc)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, crc);
        return Convert.ToBase64String(bytes);
    }

    private string KeyOf(string name)
    {
        ChunkNames.Validate(name);
        return _prefix + name;
    }

    private async Task<T> Call<T>(string name, Func<Task<T>> action)
    {
        try
        {
            return await action();
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
        {
            throw new ChunkNotFoundException($"Chunk {name} does not exist in {Location}.");
        }
        catch (AmazonS3Exception e) when (e.ErrorCode == "NoSuchBucket")
        {
            throw new ChunkStorageUnavailableException($"S3 bucket {_options.Bucket} does not exist at {Location}: create it.", e);
        }
        catch (AmazonS3Exception e) when (e.ErrorCode is "BadDigest" or "InvalidDigest" or "XAmzContentChecksumMismatch")
        {
            throw new ChunkStorageUnavailableException(
                $"Tier 2 ({Location}) refused chunk {name}: it arrived damaged, its CRC-32C did not match ({e.ErrorCode}: {e.Message}). Nothing was stored; the chunk is sent again.", e);
        }
        catch (Exception e) when (e is AmazonServiceException or AmazonClientException or HttpRequestException or IOException
                                      || (e is TaskCanceledException or TimeoutException && e is not OperationCanceledException { CancellationToken.IsCancellationRequested: true }))
        {
            throw new ChunkStorageUnavailableException($"Tier 2 ({Location}) failed on chunk {name}: {e.Message}", e);
        }
    }

    /// <summary>A read-only stream over memory, so request bodies are not copied.</summary>
    private sealed class ReadOnlyMemoryStream(ReadOnlyMemory<byte> data) : Stream
    {
        private int _position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => data.Length;

        public override long Position
        {
            get => _position;
            set => _position = (int)Math.Clamp(value, 0, data.Length);
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var n = Math.Min(buffer.Length, data.Length - _position);
            data.Span.Slice(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult(Read(buffer.Span));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Task.FromResult(Read(buffer.AsSpan(offset, count)));

        public override long Seek(long offset, SeekOrigin origin)
        {
            Position = origin switch
            {
                SeekOrigin.Begin => offset,
                SeekOrigin.Current => _position + offset,
                _ => data.Length + offset,
            };
            return _position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
