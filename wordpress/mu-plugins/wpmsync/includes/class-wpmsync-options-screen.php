<?php
/**
 * Network Admin → Settings → User sync options (settings.php?page=wpmsync-options): the network
 * options of GET/PATCH {endpoint}/options (scope, per-site opt-out and role, role filters, the
 * missing-role policy, automatic unsync).
 *
 * The functions own the sitemeta row `wpmsync_options` and validate every change before writing
 * it, so this screen never writes it: it reads the options from the functions and sends a PATCH.
 * The per-site table is paged (a network may have hundreds of sites, each needing a
 * switch_to_blog() to list its roles); since PATCH merges `sites` per site, a page only sends the
 * sites it shows and leaves the others as they are.
 *
 * @package wpmsync
 */

defined( 'ABSPATH' ) || exit;

/**
 * The network options form.
 */
final class Wpmsync_Options_Screen extends Wpmsync_Screen {

	const PARENT_FILE = 'settings.php';
	const SLUG        = 'wpmsync-options';
	const CAPABILITY  = 'manage_network_options';
	const PER_PAGE    = 50;

	const SCOPES       = array( 'all', 'main_to_subsites', 'subsites_to_main' );
	const MISSING_ROLE = array( 'skip', 'copy' );
	const ROLE_FILTERS = array( 'none', 'excluded', 'allowed' );

	/** @var array|null Options to show: what the functions hold, or what was posted after a refusal. */
	private $options;

	/** @return string Network Admin → Settings → User sync options. */
	protected function title() {
		return __( 'User sync options', 'wpmsync' );
	}

	/**
	 * @param int $paged Page of the site table.
	 * @return string This page's URL.
	 */
	public static function url( $paged = 1 ) {
		$url = parent::url();
		return $paged > 1 ? add_query_arg( 'paged', (int) $paged, $url ) : $url;
	}

	/** POST: nonce first, then PATCH {endpoint}/options. */
	protected function handle_post() {
		check_admin_referer( 'wpmsync_save_options' );
		$changes = self::changes_from_post( $_POST ); // phpcs:ignore WordPress.Security.NonceVerification.Missing -- checked just above.
		$answer  = $this->client->call( 'PATCH', 'options', $changes );
		if ( is_wp_error( $answer ) ) {
			// The functions validate everything before writing: nothing changed. Show the form
			// again with what was posted, so the admin can correct it.
			$this->notices->add(
				'error',
				/* translators: %s: error message of the sync service. */
				sprintf( __( 'The options were not saved: %s', 'wpmsync' ), $answer->get_error_message() )
			);
			$current       = $this->stored_options();
			$this->options = self::merge( null === $current ? self::defaults() : $current, $changes );
			return;
		}
		if ( isset( $answer['data']['options'] ) && is_array( $answer['data']['options'] ) ) {
			$this->options = self::normalize( $answer['data']['options'] );
		}
		wp_cache_delete( get_current_network_id() . ':wpmsync_options', 'site-options' );
		$this->notices->add( 'success', __( 'Options saved.', 'wpmsync' ) );
		$this->warn_problems( $answer['data'] );
	}

	/**
	 * The PATCH body from a posted form: every top-level option, and the sites listed on the
	 * posted page (a site with neither opt-out nor role becomes {}, which drops its entry).
	 *
	 * @param array $post $_POST (slashed).
	 * @return array
	 */
	public static function changes_from_post( array $post ) {
		$post    = wp_unslash( $post );
		$scope   = isset( $post['wpmsync_scope'] ) ? sanitize_key( $post['wpmsync_scope'] ) : 'all';
		$missing = isset( $post['wpmsync_missing_role'] ) ? sanitize_key( $post['wpmsync_missing_role'] ) : 'skip';
		$filter  = isset( $post['wpmsync_role_filter'] ) ? sanitize_key( $post['wpmsync_role_filter'] ) : 'none';
		$roles   = isset( $post['wpmsync_filter_roles'] ) ? self::role_names( (array) $post['wpmsync_filter_roles'] ) : array();

		$sites   = array();
		$site_in = isset( $post['wpmsync_site'] ) && is_array( $post['wpmsync_site'] ) ? $post['wpmsync_site'] : array();
		$listed  = isset( $post['wpmsync_site_ids'] ) ? array_filter( array_map( 'absint', (array) $post['wpmsync_site_ids'] ) ) : array();
		foreach ( array_unique( $listed ) as $blog_id ) {
			$row   = isset( $site_in[ $blog_id ] ) && is_array( $site_in[ $blog_id ] ) ? $site_in[ $blog_id ] : array();
			$entry = array();
			if ( ! empty( $row['opt_out'] ) ) {
				$entry['opt_out'] = true;
			}
			$role = isset( $row['role'] ) ? self::role_names( array( $row['role'] ) ) : array();
			if ( $role ) {
				$entry['role'] = $role[0];
			}
			$sites[ (string) $blog_id ] = (object) $entry; // {} (not []) drops the site's entry.
		}
		return array(
			// Unknown values are sent as they are: the functions refuse them with a clear 400.
			'scope'          => '' === $scope ? 'all' : $scope,
			'missing_role'   => '' === $missing ? 'skip' : $missing,
			'unsync'         => ! empty( $post['wpmsync_unsync'] ),
			'excluded_roles' => 'excluded' === $filter ? $roles : array(),
			'allowed_roles'  => 'allowed' === $filter ? $roles : array(),
			'sites'          => (object) $sites,
		);
	}

	/**
	 * Role names as posted, trimmed; the functions check the names themselves.
	 *
	 * @param array $names Raw values.
	 * @return string[]
	 */
	private static function role_names( array $names ) {
		$out = array();
		foreach ( $names as $name ) {
			$name = is_scalar( $name ) ? trim( sanitize_text_field( (string) $name ) ) : '';
			if ( '' !== $name ) {
				$out[] = substr( $name, 0, 64 );
			}
		}
		return array_values( array_unique( $out ) );
	}

	/**
	 * The options as the functions hold them; when they cannot be reached, what WordPress reads
	 * from the same sitemeta row, with a warning; null when neither works.
	 *
	 * @return array|null
	 */
	private function stored_options() {
		$answer = $this->client->call( 'GET', 'options' );
		if ( ! is_wp_error( $answer ) && isset( $answer['data']['options'] ) && is_array( $answer['data']['options'] ) ) {
			$this->warn_problems( $answer['data'] );
			return self::normalize( $answer['data']['options'] );
		}
		$this->notices->add(
			'warning',
			sprintf(
				/* translators: %s: error message. */
				__( 'Could not read the options from the sync service (%s); showing the values stored in WordPress.', 'wpmsync' ),
				is_wp_error( $answer ) ? $answer->get_error_message() : __( 'unexpected answer', 'wpmsync' )
			)
		);
		wp_cache_delete( get_current_network_id() . ':wpmsync_options', 'site-options' );
		$stored = get_site_option( 'wpmsync_options', array() );
		return self::normalize( is_array( $stored ) ? $stored : array() );
	}

	/**
	 * What the stored options name but cannot apply (a site deleted since, a role gone from a
	 * site): the functions ignore it and say so; the next save drops a deleted site's entry.
	 *
	 * @param array $data The functions' answer.
	 */
	private function warn_problems( array $data ) {
		$problems = isset( $data['problems'] ) && is_array( $data['problems'] ) ? $data['problems'] : array();
		foreach ( array_slice( $problems, 0, 20 ) as $problem ) {
			if ( is_scalar( $problem ) ) {
				/* translators: %s: what the sync service reports, e.g. "site 6 no longer exists in this network: its options are ignored". */
				$this->notices->add( 'warning', sprintf( __( 'Stored option not applied: %s', 'wpmsync' ), (string) $problem ) );
			}
		}
	}

	/** @return array The options when nothing is stored. */
	public static function defaults() {
		return array(
			'sites'          => array(),
			'excluded_roles' => array(),
			'allowed_roles'  => array(),
			'missing_role'   => 'skip',
			'scope'          => 'all',
			'unsync'         => false,
		);
	}

	/**
	 * Options in one known shape (sites keyed by int blog id).
	 *
	 * @param array $raw From the functions or from sitemeta.
	 * @return array
	 */
	public static function normalize( array $raw ) {
		$options = self::defaults();
		foreach ( array( 'excluded_roles', 'allowed_roles' ) as $name ) {
			if ( isset( $raw[ $name ] ) && is_array( $raw[ $name ] ) ) {
				$options[ $name ] = array_values( array_map( 'strval', array_filter( $raw[ $name ], 'is_scalar' ) ) );
			}
		}
		foreach ( array( 'missing_role', 'scope' ) as $name ) {
			if ( isset( $raw[ $name ] ) && is_scalar( $raw[ $name ] ) ) {
				$options[ $name ] = (string) $raw[ $name ];
			}
		}
		$options['unsync'] = ! empty( $raw['unsync'] );
		if ( isset( $raw['sites'] ) && is_array( $raw['sites'] ) ) {
			foreach ( $raw['sites'] as $blog_id => $entry ) {
				$entry = (array) $entry;
				$options['sites'][ (int) $blog_id ] = array(
					'opt_out' => ! empty( $entry['opt_out'] ),
					'role'    => isset( $entry['role'] ) && is_scalar( $entry['role'] ) ? (string) $entry['role'] : '',
				);
			}
		}
		return $options;
	}

	/**
	 * What the options would be with these changes (PATCH semantics: top-level keys replaced,
	 * sites merged per site), to show a refused form as it was posted.
	 *
	 * @param array $current Normalized options.
	 * @param array $changes changes_from_post().
	 * @return array
	 */
	public static function merge( array $current, array $changes ) {
		$sites = $current['sites'];
		foreach ( (array) $changes['sites'] as $blog_id => $entry ) {
			$sites[ (int) $blog_id ] = (array) $entry;
		}
		$changes['sites'] = $sites;
		return self::normalize( array_merge( $current, $changes ) );
	}

	// -- rendering -----------------------------------------------------------------------------

	/** The page. */
	protected function render_page() {
		$options = null === $this->options ? $this->stored_options() : $this->options;
		// phpcs:ignore WordPress.Security.NonceVerification.Recommended -- paging only.
		$paged   = isset( $_GET['paged'] ) ? max( 1, absint( $_GET['paged'] ) ) : 1;
		$total   = (int) get_sites( Wpmsync_Admin::site_query( array( 'count' => true ) ) );
		$pages   = max( 1, (int) ceil( $total / self::PER_PAGE ) );
		$paged   = min( $paged, $pages );
		$rows    = $this->site_rows(
			get_sites(
				Wpmsync_Admin::site_query(
					array(
						'number' => self::PER_PAGE,
						'offset' => ( $paged - 1 ) * self::PER_PAGE,
					)
				)
			),
			$options
		);
		$filter  = $options['excluded_roles'] ? 'excluded' : ( $options['allowed_roles'] ? 'allowed' : 'none' );
		$chosen  = 'allowed' === $filter ? $options['allowed_roles'] : $options['excluded_roles'];
		$roles   = $this->filter_role_choices( $rows, $chosen );
		$notices = $this->notices;
		require dirname( __DIR__ ) . '/views/options-page.php';
	}

	/**
	 * One row per site of this page: its roles read with WordPress itself (switch_to_blog), its
	 * default role, and its options.
	 *
	 * @param WP_Site[] $sites   Sites of this page.
	 * @param array     $options Normalized options.
	 * @return array[] {blog_id, label, roles: name => label, default_role, opt_out, role}
	 */
	private function site_rows( array $sites, array $options ) {
		$rows = array();
		foreach ( $sites as $site ) {
			$blog_id = (int) $site->blog_id;
			switch_to_blog( $blog_id );
			$roles        = wp_roles()->get_names();
			$default_role = (string) get_option( 'default_role', 'subscriber' );
			restore_current_blog();
			$entry = isset( $options['sites'][ $blog_id ] ) ? $options['sites'][ $blog_id ] : array(
				'opt_out' => false,
				'role'    => '',
			);
			$rows[] = array(
				'blog_id'      => $blog_id,
				'label'        => Wpmsync_Admin::site_label( $site ),
				'roles'        => array_map( 'translate_user_role', $roles ),
				'default_role' => $default_role,
				'opt_out'      => $entry['opt_out'],
				'role'         => $entry['role'],
			);
		}
		return $rows;
	}

	/**
	 * Roles offered by the role filter: the main site's, those of the sites on this page, and
	 * those already chosen (so a saved name never disappears from the form).
	 *
	 * @param array[]  $rows   site_rows().
	 * @param string[] $chosen Roles in the filter now.
	 * @return array<string,string> name => label
	 */
	private function filter_role_choices( array $rows, array $chosen ) {
		switch_to_blog( get_main_site_id() );
		$roles = array_map( 'translate_user_role', wp_roles()->get_names() );
		restore_current_blog();
		foreach ( $rows as $row ) {
			$roles += $row['roles'];
		}
		foreach ( $chosen as $name ) {
			if ( ! isset( $roles[ $name ] ) ) {
				$roles[ $name ] = $name;
			}
		}
		return $roles;
	}
}
