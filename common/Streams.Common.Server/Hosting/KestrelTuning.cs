using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;

namespace Streams.Common.Server.Hosting;

/// <summary>
/// Kestrel settings for long-lived, high-volume gRPC streams (measurements: docs/wire-protocol.md):
/// 16 MiB HTTP/2 windows so a stream is never stalled waiting for window updates, no request-body size or
/// minimum-rate limits (append streams live for hours and idle for minutes), and 64 KiB pool blocks.
/// </summary>
public static class KestrelTuning
{
    private const int WindowSize = 16 * 1024 * 1024;

    public static void AddTunedMemoryPool(this IServiceCollection services) =>
        services.AddSingleton<IMemoryPoolFactory<byte>, PinnedBlockMemoryPoolFactory>();

    public static void ApplyLimits(KestrelServerOptions options)
    {
        options.AddServerHeader = false;
        options.Limits.MaxRequestBodySize = null;
        options.Limits.MinRequestBodyDataRate = null;
        options.Limits.MinResponseDataRate = null;
        options.Limits.Http2.InitialConnectionWindowSize = WindowSize;
        options.Limits.Http2.InitialStreamWindowSize = WindowSize;
        options.Limits.Http2.MaxStreamsPerConnection = 1024;
        options.Limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(30);
        options.Limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
        options.Limits.MaxResponseBufferSize = 4 * 1024 * 1024;
        options.Limits.MaxRequestBufferSize = 4 * 1024 * 1024;
    }
}
