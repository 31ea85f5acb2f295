using System.Web;
using Streams.Tier2.FileSystem;
using Streams.Tier2.S3;

namespace Streams.Tier2;

/// <summary>
/// Opens Tier 2 from a URI: <c>file:///PATH</c> (or a plain path) for a directory, or
/// <c>s3://BUCKET[/PREFIX][?endpoint=http://HOST:PORT&amp;region=R&amp;pathStyle=true]</c> for S3, credentials from the
/// standard AWS environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the SDK's default chain.
/// </summary>
public static class ChunkStorageFactory
{
    /// <summary>Like <see cref="Open"/>, but null, empty or "none" mean no Tier 2.</summary>
    public static IChunkStorage? OpenOrNone(string? uri) =>
        string.IsNullOrWhiteSpace(uri) || uri.Equals("none", StringComparison.OrdinalIgnoreCase) ? null : Open(uri);

    public static IChunkStorage Open(string uri)
    {
        if (string.IsNullOrWhiteSpace(uri))
        {
            throw new ArgumentException("Tier 2 is not set: give file://PATH or s3://BUCKET/PREFIX?endpoint=URL.");
        }

        if (uri.StartsWith("s3://", StringComparison.OrdinalIgnoreCase))
        {
            return new S3ChunkStorage(ParseS3(uri));
        }

        if (uri.StartsWith("file://", StringComparison.OrdinalIgnoreCase))
        {
            return new FileChunkStorage(new Uri(uri).LocalPath);
        }

        if (uri.Contains("://", StringComparison.Ordinal))
        {
            throw new ArgumentException($"Tier 2 '{uri}' has an unknown scheme: use file://PATH or s3://BUCKET/PREFIX.");
        }

        return new FileChunkStorage(uri);
    }

    public static S3ChunkStorageOptions ParseS3(string uri)
    {
        var parsed = new Uri(uri);
        var query = HttpUtility.ParseQueryString(parsed.Query);
        var known = new HashSet<string>(["endpoint", "region", "pathStyle"], StringComparer.OrdinalIgnoreCase);
        foreach (var name in query.AllKeys)
        {
            if (name is null || !known.Contains(name))
            {
                throw new ArgumentException($"Tier 2 '{uri}' has an unknown parameter '{name}': known are endpoint, region, pathStyle.");
            }
        }

        return new S3ChunkStorageOptions
        {
            Bucket = parsed.Host,
            Prefix = Uri.UnescapeDataString(parsed.AbsolutePath).Trim('/'),
            Endpoint = query["endpoint"],
            Region = query["region"] ?? Environment.GetEnvironmentVariable("AWS_REGION") ?? "us-east-1",
            ForcePathStyle = query["pathStyle"] is { } style ? bool.Parse(style) : null,
            AccessKey = Environment.GetEnvironmentVariable("AWS_ACCESS_KEY_ID"),
            SecretKey = Environment.GetEnvironmentVariable("AWS_SECRET_ACCESS_KEY"),
        };
    }
}
