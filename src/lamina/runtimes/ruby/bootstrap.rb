# frozen_string_literal: true

# Lamina's Ruby runtime: runs inside the sandbox and speaks the Lambda Runtime API.
#
# Started as `ruby --disable-gems /var/runtime/bootstrap.rb` with cwd /var/task. It requires the
# handler's file named by `_HANDLER` (`file.method` or `file.Module::Class.method`), then loops on
# `GET /invocation/next` and answers each event with `POST …/response` or `…/error`, giving the
# handler the same event, `context`, error bodies, error types, log lines and exit codes as AWS
# Lambda's managed ruby runtimes (the aws_lambda_ric gem).
#
# Invariants: standard library only, one file, nothing heavy on the start path. RubyGems costs
# about 45 ms of CPU at every start, so the runtime is started without it and loads it the first
# time something needs it (a `require` that the load path cannot satisfy, `Gem`, `gem`); `Logger`,
# `URI` and `Net::HTTP` are autoloaded. What AWS's runtime leaves loaded for the function (json,
# time, stringio, socket) is loaded. One keep-alive connection to the Runtime API, reopened once
# if it was closed; $stdout is synchronous, so every line is written before the result is posted.
# Compatible with Ruby 3.1 and later.

module LaminaRuntime
  RUNTIME_FILE = __FILE__ # as backtraces name it
  TASK_ROOT = ENV['LAMBDA_TASK_ROOT'] || Dir.pwd
  RUNTIME_DIR = ENV['LAMBDA_RUNTIME_DIR'] || File.dirname(File.expand_path(__FILE__))
  ABI_VERSION = "#{RUBY_VERSION[/\A\d+\.\d+/]}.0" # RbConfig::CONFIG['ruby_version'], without loading it

  # The function's code and layers leave the load path until the runtime has what it needs, so
  # that a file of theirs cannot stand in for a library the runtime loads.
  FIRST_PATHS = [TASK_ROOT, File.join(RUNTIME_DIR, 'lib'), '/opt/ruby/lib'].freeze
  INITIAL_LOAD_PATH = $LOAD_PATH.dup.freeze
  $LOAD_PATH.reject! { |entry| entry.start_with?("#{TASK_ROOT}/", '/opt/') || FIRST_PATHS.include?(entry) }
end

require 'json'
require 'socket'
require 'stringio'
require 'time'

module LaminaRuntime
  # The load path AWS gives a function (its RUBYLIB): code, runtime, layers, then Ruby's own.
  def self.setup_load_path
    $LOAD_PATH.replace((FIRST_PATHS + INITIAL_LOAD_PATH + $LOAD_PATH).uniq)
  end

  # AWS's GEM_PATH when the platform sets none: bundled gems, then layers' gems.
  def self.setup_gem_path
    ENV['GEM_PATH'] ||= ["#{TASK_ROOT}/vendor/bundle/ruby/#{ABI_VERSION}", "/opt/ruby/gems/#{ABI_VERSION}"]
                        .join(File::PATH_SEPARATOR)
  end

  # Ruby's own gem directories stay searchable after GEM_PATH and GEM_HOME (the gems Ruby bundles,
  # such as rexml, live there), as a trailing separator in GEM_PATH asks of RubyGems.
  def self.rubygems_loaded
    @rubygems = :loaded
    path = ENV['GEM_PATH']
    Gem.paths = { 'GEM_PATH' => path + File::PATH_SEPARATOR } if path && !path.end_with?(File::PATH_SEPARATOR)
  end

  # --- Logger as AWS's runtime patches it ---------------------------------------------------------

  LOG_FORMAT = '%<sev>s, [%<datetime>s #%<process>d] %<severity>5s %<request_id>s -- %<progname>s: %<msg>s'

  # Where a Logger of $stdout or $stderr writes: the function's log, one record a line.
  class LogSink
    def write(message)
      STDOUT.write(message.end_with?("\n") ? message : "#{message}\n")
    end

    def close; end

    def reopen(_log = nil)
      self
    end
  end

  # Logger.new($stdout), Logger.new($stderr) and Logger.new(nil) log with the request id.
  module LoggerPatch
    def initialize(logdev = nil, *args, **kwargs, &block)
      if logdev.nil? || logdev.equal?($stdout) || logdev.equal?($stderr) || logdev.equal?(STDOUT) ||
         logdev.equal?(STDERR)
        logdev = LaminaRuntime::LOG_SINK
        kwargs[:formatter] ||= LaminaRuntime::LogFormatter.new
      end
      super(logdev, *args, **kwargs, &block)
    end
  end

  def self.patch_logger
    return if @logger_patched || !defined?(::Logger::Formatter)

    @logger_patched = true
    const_set(:LOG_SINK, LogSink.new)
    formatter = Class.new(::Logger::Formatter) do
      def call(severity, time, progname, msg)
        format(LOG_FORMAT, sev: severity[0, 1], datetime: format_datetime(time), process: Process.pid,
                           severity: severity, request_id: $_global_aws_request_id, progname: progname,
                           msg: msg2str(msg)).encode!('UTF-8')
      end
    end
    const_set(:LogFormatter, formatter)
    ::Logger.prepend(LoggerPatch)
  end

  # --- the parts of the standard library loaded on first use -------------------------------------

  # Called by Kernel#require after each require that loaded something.
  def self.loaded(path)
    name = File.basename(path.to_s, '.rb')
    patch_logger if name == 'logger'
    rubygems_loaded if name == 'rubygems'
  end

  # Called by Kernel#require when the load path could not satisfy a require: true once RubyGems
  # has been loaded for the retry, false when RubyGems is loaded (or loading) already.
  def self.rubygems_needed
    return false if @rubygems # (`defined?(::Gem::Specification)` would itself autoload it)

    @rubygems = :loading
    ::Gem # through its autoload
    true
  end

  # RubyGems is being required (its own requires may fail on purpose meanwhile).
  def self.rubygems_loading
    @rubygems ||= :loading
  end

  # (Each `defined?` comes before its autoload: `defined?(A::B)` would trigger A's autoload.)
  def self.install_lazy_loading
    if defined?(::Logger::Formatter)
      patch_logger
    else
      Object.autoload(:Logger, 'logger')
    end
    Object.autoload(:URI, 'uri') unless defined?(::URI)
    Object.const_set(:Net, Module.new) unless defined?(::Net)
    ::Net.autoload(:HTTP, 'net/http') unless ::Net.const_defined?(:HTTP, false)
    if defined?(::Gem::Specification)
      rubygems_loaded # started with RubyGems
    else
      Object.autoload(:Gem, 'rubygems')
      Object.autoload(:RbConfig, 'rbconfig') unless defined?(::RbConfig)
    end
  end

  # --- the Runtime API -----------------------------------------------------------------------------

  ERROR_TYPE_HEADER = 'Lambda-Runtime-Function-Error-Type'

  # The Runtime API went away: nothing more can be reported.
  class ConnectionLost < StandardError; end

  # A minimal HTTP/1.1 keep-alive client (one connection, blocking).
  class RuntimeApiClient
    PREFIX = '/2018-06-01/runtime'

    def initialize(address)
      host, _, port = address.rpartition(':')
      @host = host.empty? ? '127.0.0.1' : host
      @port = Integer(port)
      @host_header = address
      @sock = nil
      @buffer = String.new(encoding: Encoding::BINARY)
    end

    def next_invocation
      loop do
        status, headers, body = request('GET', '/invocation/next')
        return [headers, body] if status == 200

        sleep(0.01) # the API refused (it should not): do not spin
      end
    end

    def post_response(request_id, body, content_type)
      request('POST', "/invocation/#{quote(request_id)}/response", body, 'Content-Type' => content_type)
    end

    def post_error(request_id, body, error_type)
      request('POST', "/invocation/#{quote(request_id)}/error", body,
              'Content-Type' => 'application/json', ERROR_TYPE_HEADER => error_type)
    end

    def post_init_error(body, error_type)
      request('POST', '/init/error', body, 'Content-Type' => 'application/json', ERROR_TYPE_HEADER => error_type)
    end

    private

    def quote(request_id)
      request_id.b.gsub(/[^A-Za-z0-9\-_.~]/n) { |c| format('%%%02X', c.ord) }
    end

    def request(method, path, body = nil, headers = nil)
      head = String.new("#{method} #{PREFIX}#{path} HTTP/1.1\r\nHost: #{@host_header}\r\n", encoding: Encoding::BINARY)
      headers&.each { |name, value| head << "#{name}: #{value.to_s.b.tr("\r\n", '  ')}\r\n" }
      head << "Content-Length: #{body.bytesize}\r\n" if body
      head << "\r\n"
      attempt = 0
      begin
        sock = @sock || connect
        if body.nil?
          sock.write(head)
        elsif body.bytesize < 65_536
          sock.write(head << body.b)
        else # up to 6 MB: do not copy it into the head
          sock.write(head)
          sock.write(body)
        end
        read_response(sock)
      rescue SystemCallError, IOError => e
        close
        attempt += 1
        retry if attempt < 2
        raise ConnectionLost, "#{e.class}: #{e.message}"
      end
    end

    def connect
      sock = TCPSocket.new(@host, @port)
      sock.setsockopt(Socket::IPPROTO_TCP, Socket::TCP_NODELAY, 1)
      @buffer.clear
      @sock = sock
    end

    def close
      @sock&.close
    rescue IOError
      nil
    ensure
      @sock = nil
      @buffer.clear
    end

    def read_response(sock)
      buffer = @buffer
      until (end_of_head = buffer.index("\r\n\r\n"))
        buffer << sock.readpartial(65_536) # EOFError (an IOError) when the API closed the connection
      end
      lines = buffer.slice!(0, end_of_head + 4).split("\r\n")
      status = lines.shift.to_s.split(' ', 3)[1].to_i
      headers = {}
      lines.each do |line|
        name, value = line.split(':', 2)
        next unless name

        headers[name.strip.downcase.force_encoding(Encoding::UTF_8)] = value.to_s.strip.force_encoding(Encoding::UTF_8)
      end
      length = headers['content-length'].to_i
      buffer << sock.readpartial([length - buffer.bytesize, 1 << 20].min) while buffer.bytesize < length
      body = buffer.slice!(0, length)
      close if headers['connection']&.casecmp?('close')
      [status, headers, body]
    end
  end

  # What `AwsLambda::Marshaller.marshall_request` and `LambdaContext.new` are given: AWS's runtime
  # gives them the Net::HTTP response of GET /next, read through `[]` and `body`.
  class InvocationRequest
    attr_reader :body

    def initialize(headers, body)
      @headers = headers
      @body = body
    end

    def [](name)
      @headers[name.to_s.downcase]
    end

    def key?(name)
      @headers.key?(name.to_s.downcase)
    end

    def to_hash
      @headers.dup
    end

    def code
      '200'
    end
  end

  # --- errors, as AWS's runtime reports them ---------------------------------------------------------

  # Error classes whose name is given as the error type header; every other is `Function<UserException>`.
  REPORTED_CLASSES = %w[ArgumentError NoMethodError Exception StandardError NameError LoadError SystemExit
                        SystemStackError].freeze
  OWN_FRAME = /in [`'](?:Kernel#)?(?:require|gem)'\z/.freeze # the lazy RubyGems hooks, not AWS's

  # One reported failure: its body `{errorMessage, errorType, stackTrace}` and its header.
  class Failure
    attr_reader :error_type, :header_type

    def initialize(error, classification)
      @error_type = "#{classification}<#{error.class}>"
      @header_type = REPORTED_CLASSES.include?(error.class.to_s) ? @error_type : 'Function<UserException>'
      @message = LaminaRuntime.utf8(error.message)
      @trace = LaminaRuntime.user_frames(error.backtrace).map { |frame| LaminaRuntime.utf8(frame) }
    end

    def to_lambda_response
      { 'errorMessage' => @message, 'errorType' => @error_type, 'stackTrace' => @trace }
    end

    def log(title)
      puts title
      puts JSON.pretty_generate(to_lambda_response)
    end
  end

  # Text fit for JSON: invalid bytes replaced, so that reporting an error cannot fail.
  def self.utf8(text)
    text = text.to_s
    text = text.encode(Encoding::UTF_8, invalid: :replace, undef: :replace) unless text.encoding == Encoding::UTF_8
    text.valid_encoding? ? text : text.scrub
  end

  # The first 100 frames, up to the first of the runtime's own.
  def self.user_frames(backtrace)
    frames = []
    (backtrace || []).first(100).each do |line|
      if line.start_with?(RUNTIME_FILE)
        next if OWN_FRAME.match?(line)

        break
      end
      frames << line
    end
    frames
  end

  # --- the handler ------------------------------------------------------------------------------------

  # `_HANDLER` split as AWS's runtime splits it.
  class Handler
    attr_reader :file_name, :class_name, :method_name

    def initialize(handler)
      parts = handler.split('.')
      case parts.size
      when 2 then @file_name, @method_name = parts
      when 3 then @file_name, @class_name, @method_name = parts
      else
        raise ArgumentError, "Invalid handler #{parts}, must be of form FILENAME.METHOD or FILENAME.CLASS.METHOD " \
                             'where FILENAME corresponds with an existing Ruby source file FILENAME.rb, CLASS is ' \
                             'an optional module/class namespace and METHOD is a callable method. If using CLASS, ' \
                             'METHOD must be a class-level method.'
      end
    end
  end

  # Raised out of the handler: reported as `Function<…>`, and the runtime carries on.
  class HandlerError < StandardError
    attr_reader :error

    def initialize(error)
      @error = error
      super(error.message)
    end
  end

  # NoMethodError, NameError and non-StandardErrors: reported, then the runtime exits (AWS's -1).
  class CriticalError < HandlerError; end

  # --- the loop --------------------------------------------------------------------------------------

  class Runtime
    def initialize(client, handler_name)
      @client = client
      @handler_name = handler_name
    end

    # Exits with AWS's code: -4 after an init error, -1 after a critical error.
    def run
      begin
        handler = Handler.new(@handler_name)
        require handler.file_name
        @invoker = LambdaHandler.new(handler)
      rescue Exception => e # rubocop:disable Lint/RescueException - any init failure, as on AWS
        fail_init(e)
        exit(-4)
      end
      loop { exit(-1) unless serve_one }
    end

    private

    def fail_init(error)
      failure = Failure.new(error, 'Init')
      failure.log("Init error when loading handler #{@handler_name}")
      @client.post_init_error(failure.to_lambda_response.to_json, failure.header_type)
    end

    # One invocation; false when the runtime must exit after it.
    def serve_one
      headers, body = @client.next_invocation
      request_id = headers['lambda-runtime-aws-request-id'].to_s
      $_global_aws_request_id = request_id
      trace_id = headers['lambda-runtime-trace-id']
      if trace_id && !trace_id.empty?
        ENV['_X_AMZN_TRACE_ID'] = trace_id
      else
        ENV.delete('_X_AMZN_TRACE_ID')
      end
      raw = InvocationRequest.new(headers, body)
      begin
        response, content_type = @invoker.call_handler(raw)
      rescue HandlerError => e
        critical = e.is_a?(CriticalError)
        failure = Failure.new(e.error, 'Function')
        failure.log(critical ? 'Critical exception from handler' : 'Error raised from handler method')
        @client.post_error(request_id, failure.to_lambda_response.to_json, failure.header_type)
        return !critical
      end
      response = response.read if content_type == 'application/unknown'
      @client.post_response(request_id, response.to_s, content_type || 'application/json')
      true
    end
  end
end

# The object a `file.method` handler is called on, as in AWS's runtime (its name shows in messages).
class LambdaHandler
  def initialize(handler)
    @handler_class = handler.class_name
    @handler_method_name = handler.method_name
  end

  # [response, content type]: a StringIO or IO is sent as it reads, anything else as JSON.
  def call_handler(raw_request)
    request = AwsLambda::Marshaller.marshall_request(raw_request)
    context = LambdaContext.new(raw_request)
    response = if @handler_class
                 Kernel.const_get(@handler_class).send(@handler_method_name, event: request, context: context)
               else
                 __send__(@handler_method_name, event: request, context: context)
               end
    AwsLambda::Marshaller.marshall_response(response) # serialization can be a part of user code
  rescue NoMethodError, NameError => e
    raise LaminaRuntime::CriticalError, e
  rescue StandardError => e
    raise LaminaRuntime::HandlerError, e
  rescue Exception => e # rubocop:disable Lint/RescueException - SystemExit, ScriptError…: as on AWS
    raise LaminaRuntime::CriticalError, e
  end
end

# The handler's `context`, with the readers and method AWS's runtime gives it.
class LambdaContext
  attr_reader :aws_request_id, :invoked_function_arn, :log_group_name, :log_stream_name, :function_name,
              :memory_limit_in_mb, :function_version, :identity, :tenant_id, :client_context, :deadline_ms

  def initialize(request)
    @clock_diff = Process.clock_gettime(Process::CLOCK_REALTIME, :millisecond) -
                  Process.clock_gettime(Process::CLOCK_MONOTONIC, :millisecond)
    @deadline_ms = request['Lambda-Runtime-Deadline-Ms'].to_i
    @aws_request_id = request['Lambda-Runtime-Aws-Request-Id']
    @invoked_function_arn = request['Lambda-Runtime-Invoked-Function-Arn']
    @log_group_name = ENV['AWS_LAMBDA_LOG_GROUP_NAME']
    @log_stream_name = ENV['AWS_LAMBDA_LOG_STREAM_NAME']
    @function_name = ENV['AWS_LAMBDA_FUNCTION_NAME']
    @memory_limit_in_mb = ENV['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']
    @function_version = ENV['AWS_LAMBDA_FUNCTION_VERSION']
    identity = request['Lambda-Runtime-Cognito-Identity'].to_s
    @identity = JSON.parse(identity) unless identity.empty?
    tenant_id = request['Lambda-Runtime-Aws-Tenant-Id'].to_s
    @tenant_id = tenant_id unless tenant_id.empty?
    client_context = request['Lambda-Runtime-Client-Context'].to_s
    @client_context = JSON.parse(client_context) unless client_context.empty?
  end

  def get_remaining_time_in_millis # rubocop:disable Naming/AccessorMethodName - AWS's name
    remaining = @deadline_ms - (Process.clock_gettime(Process::CLOCK_MONOTONIC, :millisecond) + @clock_diff)
    remaining.positive? ? remaining : 0
  end
end

module AwsLambda
  # How events and results are converted; a function may redefine these, as on AWS.
  class Marshaller
    class << self
      def marshall_request(raw_request)
        raw_request['Content-Type'] == 'application/json' ? JSON.parse(raw_request.body) : raw_request.body
      end

      def marshall_response(method_response)
        case method_response
        when StringIO, IO then [method_response, 'application/unknown']
        else method_response.to_json
        end
      end
    end
  end
end

module Kernel
  alias_method :lamina_original_require, :require
  private :lamina_original_require

  # `require`, loading RubyGems first when the load path alone cannot satisfy it (see the top).
  def require(path)
    LaminaRuntime.rubygems_loading if path == 'rubygems'
    loaded = lamina_original_require(path)
  rescue LoadError
    raise unless LaminaRuntime.rubygems_needed

    require(path) # now RubyGems' own, which comes back here
  else
    LaminaRuntime.loaded(path) if loaded
    loaded
  end
  private :require

  unless private_method_defined?(:URI)
    # Replaced by uri's own when it loads (AWS's runtime has loaded it with net/http).
    def URI(uri) # rubocop:disable Naming/MethodName - Ruby's name
      ::URI
      URI(uri)
    end
    private :URI
  end

  unless defined?(::Gem::Specification)
    # Replaced by RubyGems' own when it loads.
    def gem(*args, **kwargs)
      ::Gem
      gem(*args, **kwargs)
    end
    private :gem
  end
end

if $PROGRAM_NAME == __FILE__
  $stdout.sync = true
  STDOUT.sync = true
  LaminaRuntime.setup_load_path
  LaminaRuntime.setup_gem_path
  LaminaRuntime.install_lazy_loading
  client = LaminaRuntime::RuntimeApiClient.new(ENV['AWS_LAMBDA_RUNTIME_API'] || '127.0.0.1:9001')
  begin
    LaminaRuntime::Runtime.new(client, ENV['_HANDLER'].to_s).run
  rescue LaminaRuntime::ConnectionLost => e
    warn "Lamina runtime: lost the Runtime API: #{e.message}"
    exit(1)
  end
end
