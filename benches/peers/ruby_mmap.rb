#!/usr/bin/env ruby
# frozen_string_literal: true

# GitLab's prometheus-client-mmap (Debian `ruby-prometheus-client-mmap`), populated with
# the scrape-compare shape.
#
# Usage: ruby_mmap.rb --workers W --series S [--runs N]
#
# Forks W worker processes after pointing the library at a fresh multiprocess files
# directory. Each creates `http_requests_total` (counter) and
# `http_request_duration_seconds` (histogram, the library's default buckets, which are
# the 11 Prometheus defaults), both with labels method, route and status, increments
# each of S counter series once and observes once into each of S/10 histogram series,
# then exits. The label sets and observed values follow `herd_benches::scrape` exactly.
#
# The parent then times `Prometheus::Client::Formats::Text.marshal_multiprocess(dir)`
# (what the library's Rack exporter calls per scrape) N times, checks that the text
# holds exactly W*S counter increments over S series and W*(S/10) observations over
# S/10 histogram series, and prints one line:
#
#     ruby_ms=<median> ruby_bytes=<n> ruby_mad_ms=<f> ruby_runs=<n> ruby_version=<v>
#     ruby_apparent_bytes=<n>
#
# ruby_bytes is the disk space of the directory's files: the sum of st_blocks * 512
# (allocated blocks, as herd's figure is measured); ruby_apparent_bytes the sum of
# their lengths.

require 'optparse'
require 'tmpdir'
require 'fileutils'
require 'logger'
require 'prometheus/client'
require 'prometheus/client/version'
require 'prometheus/client/formats/text'

METHODS = %w[GET POST PUT DELETE PATCH].freeze
STATUSES = %w[200 201 204 400 404 500].freeze
# One value per bucket of the default bounds, +Inf included.
OBSERVED = [0.003, 0.007, 0.02, 0.04, 0.08, 0.2, 0.4, 0.8, 2.0, 4.0, 8.0, 12.0].freeze

# The label values of series i (see herd_benches::scrape::label_values).
def labels(i)
  { method: METHODS[i % 5], route: format('/api/v1/resource_%03d/{id}', i / 30), status: STATUSES[(i / 5) % 6] }
end

def populate(series)
  registry = Prometheus::Client::Registry.new
  requests = registry.counter(:http_requests_total, 'HTTP requests handled.')
  durations = registry.histogram(:http_request_duration_seconds, 'HTTP request latency.')
  series.times { |i| requests.increment(labels(i), 1) }
  (series / 10).times { |j| durations.observe(labels(j), OBSERVED[j % OBSERVED.length]) }
end

# [allocated bytes, apparent bytes] of the regular files in dir.
def disk_bytes(dir)
  stats = Dir.children(dir).map { |name| File.lstat(File.join(dir, name)) }.select(&:file?)
  [stats.sum { |st| st.blocks * 512 }, stats.sum(&:size)]
end

# Sums the samples of the text output; a label value holds no space, so the value is
# the text after the last space.
def check(text, workers, series)
  counter_total = 0.0
  counter_series = 0
  histogram_count = 0.0
  histogram_series = 0
  text.each_line do |line|
    next if line.start_with?('#') || line.strip.empty?

    name = line[/\A[a-zA-Z_:][a-zA-Z0-9_:]*/]
    value = Float(line.split(' ').last)
    case name
    when 'http_requests_total'
      counter_total += value
      counter_series += 1
    when 'http_request_duration_seconds_count'
      histogram_count += value
      histogram_series += 1
    end
  end
  got = [counter_total, counter_series, histogram_count, histogram_series].map(&:to_f)
  expected = [workers * series, series, workers * (series / 10), series / 10].map(&:to_f)
  return if got == expected

  abort "ruby_mmap.rb: wrong aggregate: (counter total, counter series, histogram count, " \
        "histogram series) = #{got.inspect}, expected #{expected.inspect}"
end

def median(values)
  sorted = values.sort
  mid = sorted.length / 2
  sorted.length.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
end

options = { runs: 5 }
OptionParser.new do |o|
  o.banner = 'Usage: ruby_mmap.rb --workers W --series S [--runs N]'
  o.on('--workers N', Integer) { |v| options[:workers] = v }
  o.on('--series N', Integer) { |v| options[:series] = v }
  o.on('--runs N', Integer) { |v| options[:runs] = v }
end.parse!
workers = options[:workers]
series = options[:series]
runs = options[:runs]
abort 'ruby_mmap.rb: --workers and --series are required' unless workers && series
abort 'ruby_mmap.rb: --workers, --series and --runs must be at least 1' if [workers, series, runs].min < 1

dir = Dir.mktmpdir('herd-scrape-ruby-')
begin
  Prometheus::Client.configure do |c|
    c.multiprocess_files_dir = dir
    # The library logs write failures to stdout by default; stdout carries the result.
    c.logger = Logger.new($stderr)
  end

  children = Array.new(workers) do
    Process.fork do
      code = 0
      begin
        populate(series)
      rescue StandardError => e
        warn "ruby_mmap.rb: worker #{Process.pid} failed: #{e.inspect}"
        code = 1
      end
      # exit! skips at_exit handlers, which belong to the parent (Dir.mktmpdir's cleanup).
      exit!(code)
    end
  end
  failed = children.count { |pid| !Process.wait2(pid)[1].success? }
  abort "ruby_mmap.rb: #{failed} of #{workers} workers failed" if failed.positive?

  times = []
  text = ''
  runs.times do
    start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    text = Prometheus::Client::Formats::Text.marshal_multiprocess(dir)
    times << (Process.clock_gettime(Process::CLOCK_MONOTONIC) - start) * 1e3
  end
  check(text, workers, series)
  mid = median(times)
  mad = median(times.map { |t| (t - mid).abs })
  allocated, apparent = disk_bytes(dir)
  puts format('ruby_ms=%.3f ruby_bytes=%d ruby_mad_ms=%.3f ruby_runs=%d ruby_version=%s ruby_apparent_bytes=%d',
              mid, allocated, mad, runs, Prometheus::Client::VERSION, apparent)
ensure
  FileUtils.rm_rf(dir)
end
