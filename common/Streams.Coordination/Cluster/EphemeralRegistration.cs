using Microsoft.Extensions.Logging;
using Streams.Common.Resilience;
using Streams.Coordination.Metadata;

namespace Streams.Coordination.Cluster;

/// <summary>
/// Keeps an ephemeral node in place for as long as it runs: created at start, created again after every session
/// loss (the old one vanished with the session). A node left by this member's previous, crashed process is waited
/// out: it disappears when that session times out.
/// </summary>
public sealed class EphemeralRegistration : IAsyncDisposable
{
    private readonly IMetadataStore _store;
    private readonly string _path;
    private readonly byte[] _data;
    private readonly ILogger _logger;
    private readonly BackgroundRetryLoop _keepAlive = new();

    public EphemeralRegistration(IMetadataStore store, string path, byte[] data, ILogger logger)
    {
        _store = store;
        _path = path;
        _data = data;
        _logger = logger;
    }

    /// <summary>Registers (waiting out a stale node of a previous process) and keeps the registration alive.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var registeredWith = _store.SessionLost;
        await RegisterAsync(cancellationToken);
        _keepAlive.Start($"Registering {_path}", async token =>
        {
            // The loss of the session the node was made with, not of whatever session is current: a registration that
            // failed after a loss (the new session was not open yet) is retried at once, rather than after the next loss.
            await registeredWith.WaitAsync(token);
            _logger.LogWarning("Session lost: registering {Path} again.", _path);
            var session = _store.SessionLost;
            await RegisterAsync(token);
            registeredWith = session;
        }, _logger);
    }

    public async ValueTask DisposeAsync()
    {
        await _keepAlive.StopAsync();
        try
        {
            await _store.TryDeleteAsync(_path);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The session ends with the process anyway, and the node with it.
        }
    }

    private async Task RegisterAsync(CancellationToken cancellationToken)
    {
        while (!await _store.TryCreateEphemeralAsync(_path, _data, cancellationToken))
        {
            var (existing, changed) = await _store.GetAndWatchAsync(_path, cancellationToken);
            if (existing is { } value && value.Data.AsSpan().SequenceEqual(_data))
            {
                // Most likely our own previous process; it goes when its session expires.
                _logger.LogInformation("{Path} is still held by a previous session; waiting for it to expire.", _path);
            }

            await changed.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }
}
