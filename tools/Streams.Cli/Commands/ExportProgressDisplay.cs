using System.Diagnostics;
using System.Globalization;
using Streams.Export;

namespace Streams.Cli.Commands;

/// <summary>
/// The progress of <c>streams export</c> on stderr: one line redrawn in place on a terminal, otherwise (with
/// --progress) a line a second.
/// </summary>
internal sealed class ExportProgressDisplay(bool terminal)
{
    private static readonly TimeSpan LineEvery = TimeSpan.FromSeconds(1);

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan? _shownAt;

    public void Show(ExportProgress progress)
    {
        var done = progress.Bytes >= progress.TotalBytes;
        if (!terminal && !done && _shownAt is { } last && _clock.Elapsed - last < LineEvery)
        {
            return;
        }

        _shownAt = _clock.Elapsed;
        var percent = progress.TotalBytes == 0 ? 100 : progress.Bytes * 100.0 / progress.TotalBytes;
        var seconds = Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);
        var line = string.Create(CultureInfo.InvariantCulture,
            $"{percent,5:F1}%  {progress.Bytes / 1e6:F1}/{progress.TotalBytes / 1e6:F1} MB  {progress.Rows:N0} events  {progress.RangesDone}/{progress.Ranges} ranges  {progress.Bytes / 1e6 / seconds:F1} MB/s");
        if (terminal)
        {
            Console.Error.Write("\r" + line.PadRight(78));
        }
        else
        {
            Console.Error.WriteLine(line);
        }
    }

    /// <summary>Ends the redrawn line, so what follows starts on a line of its own.</summary>
    public void Finish()
    {
        if (terminal && _shownAt is not null)
        {
            Console.Error.WriteLine();
        }
    }
}
