namespace Streams.Tier2.S3;

/// <summary>Where and how to reach an S3 bucket (AWS or any S3-compatible server).</summary>
public sealed record S3ChunkStorageOptions
{
    /// <summary>The bucket; it must exist.</summary>
    public required string Bucket { get; init; }

    /// <summary>Key prefix of every chunk (no leading or trailing '/'; empty for the bucket's root).</summary>
    public string Prefix { get; init; } = "";

    /// <summary>The service URL of an S3-compatible server (e.g. http://127.0.0.1:9000); null for AWS itself.</summary>
    public string? Endpoint { get; init; }

    /// <summary>The region to sign requests for.</summary>
    public string Region { get; init; } = "us-east-1";

    /// <summary>Path-style addressing (http://host/bucket/key), which S3-compatible servers need. Default: true when <see cref="Endpoint"/> is set.</summary>
    public bool? ForcePathStyle { get; init; }

    /// <summary>Access key; null takes the AWS SDK's default chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, instance roles).</summary>
    public string? AccessKey { get; init; }

    /// <summary>Secret key paired with <see cref="AccessKey"/>.</summary>
    public string? SecretKey { get; init; }

    /// <summary>Chunks larger than this go up in parts (multipart upload); S3's smallest part is 5 MiB.</summary>
    public int MultipartPartSize { get; init; } = 8 * 1024 * 1024;

    /// <summary>How long one request may take before it counts as failed (Tier 2 unavailable).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Bucket))
        {
            throw new ArgumentException("The S3 bucket is missing: give s3://BUCKET[/prefix].");
        }

        if (MultipartPartSize < 5 * 1024 * 1024)
        {
            throw new ArgumentException($"MultipartPartSize must be at least 5 MiB (S3's smallest part), not {MultipartPartSize}.");
        }

        if (Endpoint is not null && !Uri.TryCreate(Endpoint, UriKind.Absolute, out _))
        {
            throw new ArgumentException($"The S3 endpoint '{Endpoint}' is not an absolute URL such as http://127.0.0.1:9000.");
        }
    }
}
